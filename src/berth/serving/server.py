"""Run the server: one uvicorn process, or a supervisor with N worker processes.

Workers do not share one accepting socket: each binds its own with ``SO_REUSEPORT`` and the kernel spreads new
connections across them evenly. (A shared socket lets whichever worker wakes first take the connection, and
keep-alive clients then stick to a few busy workers.) Each worker holds its own models and batchers.
Prometheus samples go to a shared ``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` sums all workers.

On SIGTERM (or Ctrl-C) the supervisor forwards the signal; every worker stops accepting, finishes the requests
in flight (up to ``graceful_timeout_s``) and exits; the supervisor exits 0.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from berth.errors import UsageError
from berth.serving.settings import ServeSettings

log = logging.getLogger("berth.serve")


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s"))
    berth_log = logging.getLogger("berth")
    if not berth_log.handlers:
        berth_log.addHandler(handler)
    berth_log.setLevel(level.upper())


def bind_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def serve_in_process(sources: Sequence[Any], settings: ServeSettings, sock: socket.socket | None = None, *,
                     preload: bool = False) -> None:
    """Run one server in this process until SIGTERM/SIGINT; returns after a graceful drain.

    Alone, the server listens at once and loads its models in the background (the liveness probe answers while
    they load). As one of several workers (``preload``) it loads first and listens after, so the kernel never
    hands a connection to a worker that is not ready while its siblings are.
    """
    import uvicorn

    from berth.serving.app import create_app

    configure_logging(settings.log_level)
    app = create_app(sources, settings, load_in_background=not preload)
    # uvicorn annotates the grace period as int but hands it to asyncio.wait_for, which takes fractions too
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            timeout_graceful_shutdown=settings.graceful_timeout_s,  # type: ignore[arg-type]
                            access_log=False,
                            server_header=False, loop="auto", http="auto", lifespan="on")
    server = uvicorn.Server(config)
    if sock is None:
        sock = bind_socket(settings.host, settings.port, reuse_port=False)
    if not preload:
        sock.listen(2048)  # else asyncio starts listening once the lifespan (loading) has finished
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%s", host, port)
    # uvicorn drains on SIGTERM, then raises the signal again to the handler it found installed: a no-op
    # here, so that a drained server exits 0 (as orchestrators expect) instead of dying by the signal
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run(sockets=[sock])


def worker_main() -> None:
    """Entry point of one worker process: ``python -m berth.serving.server`` with its job as JSON on stdin."""
    job = json.loads(sys.stdin.read())
    settings = ServeSettings.model_validate(job["settings"])
    sock = bind_socket(settings.host, job["port"], reuse_port=True)
    serve_in_process(job["sources"], settings, sock, preload=True)


def _start_worker(sources: list[str], settings: ServeSettings, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "berth.serving.server"], stdin=subprocess.PIPE)
    assert process.stdin is not None
    job = {"sources": sources, "settings": settings.model_dump(mode="json"), "port": port}
    process.stdin.write(json.dumps(job).encode())
    process.stdin.close()
    return process


def run(sources: Sequence[Any], settings: ServeSettings) -> None:
    """Serve ``sources`` with ``settings.workers`` processes; blocks until stopped."""
    if settings.workers == 1:
        serve_in_process(sources, settings)
        return
    if not all(isinstance(s, str | os.PathLike) for s in sources):
        raise UsageError("several workers need model URIs (each worker loads its own copy), not loaded objects")
    configure_logging(settings.log_level)
    metrics_dir = tempfile.mkdtemp(prefix="berth-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    reservation = bind_socket(settings.host, settings.port, reuse_port=True)  # fixes the port for port 0
    port = reservation.getsockname()[1]
    uris = [str(s) for s in sources]
    stopping = False
    workers: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("starting %d workers on http://%s:%s", settings.workers, settings.host, port)
    restarts: list[float] = []
    try:
        workers.extend(_start_worker(uris, settings, port) for _ in range(settings.workers))
        while not stopping:
            for index, process in enumerate(workers):
                if process.poll() is not None and not stopping:
                    restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
                    if len(restarts) > 3 * settings.workers:
                        log.error("workers keep exiting; giving up")
                        stop(signal.SIGTERM, None)
                        raise SystemExit(1)
                    log.error("worker %s exited with %s; starting a new one", process.pid, process.returncode)
                    workers[index] = _start_worker(uris, settings, port)
            time.sleep(0.2)
        deadline = time.monotonic() + settings.graceful_timeout_s + 5
        for process in workers:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        reservation.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    worker_main()
