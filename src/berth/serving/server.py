"""Run the server: one uvicorn process, or a supervisor with N worker processes.

Workers do not share one accepting socket: each binds its own with ``SO_REUSEPORT`` and the kernel spreads new
connections across them evenly. (A shared socket lets whichever worker wakes first take the connection, and
keep-alive clients then stick to a few busy workers.) Each worker holds its own models and batchers.
Prometheus samples go to a shared ``PROMETHEUS_MULTIPROC_DIR`` so ``/metrics`` sums all workers.

On SIGTERM (or Ctrl-C) the supervisor forwards the signal; every worker stops accepting, finishes the requests
in flight (up to ``graceful_timeout_s``) and exits; the supervisor exits 0. Workers die with their supervisor
however it dies, and a worker that stops beating its heartbeat is killed and replaced (serving/supervision.py).
Clients are bounded by serving/connections.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from berth.errors import BerthError, BundleError, UsageError
from berth.serving import connections, supervision
from berth.serving.settings import ServeSettings

log = logging.getLogger("berth.serve")
FATAL_EXIT = 4  # a worker's exit code for "a local source cannot be served": not restarted


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
                     preload: bool = False, supervised: dict[str, Any] | None = None) -> None:
    """Run one server in this process until SIGTERM/SIGINT; returns after a graceful drain.

    Alone, the server listens at once and loads its models in the background (the liveness probe answers while
    they load). As one of several workers (``preload``) it loads first and listens after, so the kernel never
    hands a connection to a worker that is not ready while its siblings are. A supervised worker beats its
    heartbeat and reads its siblings' state for readiness (``supervised``: see serving/supervision.py).
    """
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    from berth.serving.app import create_app

    configure_logging(settings.log_level)
    fd_limit = connections.raise_fd_limit()
    app = create_app(sources, settings, load_in_background=not preload)
    plane = app.state.plane
    # uvicorn annotates the grace period as int but hands it to asyncio.wait_for, which takes fractions too
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                            timeout_graceful_shutdown=settings.graceful_timeout_s,  # type: ignore[arg-type]
                            access_log=False, server_header=False, loop="auto", lifespan="on",
                            http=connections.header_deadline_protocol(AutoHTTPProtocol, settings.header_timeout_s),
                            timeout_keep_alive=settings.keep_alive_s,
                            limit_concurrency=connections.connection_limit(settings.max_connections, fd_limit))
    heartbeat = None
    if supervised is not None:
        plane.pool = supervision.PoolStatus(supervised["status"])
        heartbeat = supervision.Heartbeat(
            supervised["heartbeat_fd"], supervision.heartbeat_interval(settings.heartbeat_timeout_s),
            stuck_after_s=settings.timeout_s + settings.heartbeat_timeout_s,
            state=lambda: supervision.READY if server.started and plane.models_ready else supervision.STARTING,
            stuck_for=plane.stuck_for)
    server = _uvicorn_server(config, heartbeat)
    fatal: list[str] = []

    def stop_fatally(reason: str) -> None:  # a local bundle that cannot be served: stop, and say why
        fatal.append(reason)
        server.should_exit = True

    plane.on_fatal = stop_fatally
    if sock is None:
        sock = bind_socket(settings.host, settings.port, reuse_port=False)
    if not preload:
        sock.listen(2048)  # else asyncio starts listening once the lifespan (loading) has finished
    host, port = sock.getsockname()[:2]
    log.info("listening on http://%s:%s (at most %s connections)", host, port, config.limit_concurrency)
    # uvicorn drains on SIGTERM, then raises the signal again to the handler it found installed: a no-op
    # here, so that a drained server exits 0 (as orchestrators expect) instead of dying by the signal
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server.run(sockets=[sock])
    stuck = plane.stuck_for()
    if stuck:  # its thread cannot be joined, and the interpreter would wait for it at exit forever
        log.error("a predict call has been running for %.0f s; exiting without waiting for it", stuck)
        logging.shutdown()
        os._exit(1)
    if fatal:
        raise BundleError(fatal[0])


def _uvicorn_server(config: Any, heartbeat: supervision.Heartbeat | None) -> Any:
    """uvicorn's server, beating the worker's heartbeat from its event loop from the start of startup (so the
    supervisor hears from a worker while it loads its models)."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            if heartbeat is not None:
                self.heartbeat_task = asyncio.get_running_loop().create_task(heartbeat.run())
            await super().startup(sockets)

    return Server(config)


def worker_main() -> None:
    """Entry point of one worker process: ``python -m berth.serving.server`` with its job as one JSON line on
    stdin; stdin then stays open as the lifeline to the supervisor."""
    job = json.loads(sys.stdin.buffer.readline())
    supervision.die_with_parent(job["parent"], sys.stdin.fileno())
    settings = ServeSettings.model_validate(job["settings"])
    sock = bind_socket(settings.host, job["port"], reuse_port=True)
    try:
        serve_in_process(job["sources"], settings, sock, preload=True, supervised=job)
    except BerthError as exc:  # the supervisor stops every worker and exits non-zero on this code
        log.error("%s", exc.message)
        sys.exit(FATAL_EXIT)


class _Worker:
    """A worker process as the supervisor holds it: the process, its lifeline and its heartbeat."""

    def __init__(self, sources: list[str], settings: ServeSettings, port: int, status: Path) -> None:
        beat_read, beat_write = os.pipe()
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "berth.serving.server"], stdin=subprocess.PIPE,
                                            pass_fds=[beat_write])
        finally:
            os.close(beat_write)
        os.set_blocking(beat_read, False)
        self.watch = supervision.Watch(beat_read)
        assert self.process.stdin is not None
        job = {"sources": sources, "settings": settings.model_dump(mode="json"), "port": port,
               "parent": os.getpid(), "heartbeat_fd": beat_write, "status": str(status)}
        try:
            self.process.stdin.write(json.dumps(job).encode() + b"\n")
            self.process.stdin.flush()  # stdin stays open: the worker exits when it closes (we died)
        except BrokenPipeError:
            pass

    @property
    def pid(self) -> int:
        return self.process.pid

    def close(self) -> None:
        self.watch.close()
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()


def run(sources: Sequence[Any], settings: ServeSettings) -> None:
    """Serve ``sources`` with ``settings.workers`` processes; blocks until stopped."""
    if settings.workers == 1:
        serve_in_process(sources, settings)
        return
    if not all(isinstance(s, str | os.PathLike) for s in sources):
        raise UsageError("several workers need model URIs (each worker loads its own copy), not loaded objects")
    configure_logging(settings.log_level)
    connections.raise_fd_limit()
    metrics_dir = supervision.make_metrics_dir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    status = Path(metrics_dir) / supervision.STATUS_FILE
    supervision.write_status(status, settings.workers, 0)
    reservation = bind_socket(settings.host, settings.port, reuse_port=True)  # fixes the port for port 0
    port = reservation.getsockname()[1]
    grpc_reservation = None
    if settings.grpc_port == 0:  # every worker's gRPC server must bind the same port: fix it here
        grpc_reservation = bind_socket(settings.host, 0, reuse_port=True)
        settings = settings.model_copy(update={"grpc_port": grpc_reservation.getsockname()[1]})
    uris = [str(s) for s in sources]
    stopping = False
    workers: list[_Worker] = []

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("starting %d workers on http://%s:%s", settings.workers, settings.host, port)
    restarts: list[float] = []
    failure = ""
    reported = -1
    try:
        workers.extend(_Worker(uris, settings, port, status) for _ in range(settings.workers))
        while not stopping:
            _read_beats(workers, 0.2)
            for index, worker in enumerate(workers):
                if stopping:
                    break
                if worker.process.poll() == FATAL_EXIT:
                    failure = ("a worker cannot load what it was asked to serve (the reason is logged above); "
                               "not serving")
                    stop(signal.SIGTERM, None)
                    break
                silent = worker.watch.silent_for(settings.heartbeat_timeout_s)
                if worker.process.poll() is None and silent is None:
                    continue
                if worker.process.poll() is None:
                    log.error("worker %s sent no heartbeat for %.1f s (hung: event loop blocked, process stopped, "
                              "or a predict call stuck); killing it", worker.pid, silent)
                    worker.process.kill()
                    worker.process.wait()
                restarts = [t for t in restarts if time.monotonic() - t < 60] + [time.monotonic()]
                if len(restarts) > 3 * settings.workers:
                    log.error("workers keep exiting; giving up")
                    stop(signal.SIGTERM, None)
                    raise SystemExit(1)
                log.error("worker %s exited with %s; starting a new one", worker.pid, worker.process.returncode)
                _forget(worker, metrics_dir)
                workers[index] = _Worker(uris, settings, port, status)
            ready = sum(w.watch.ready(settings.heartbeat_timeout_s) for w in workers)
            if ready != reported:
                supervision.write_status(status, settings.workers, ready)
                reported = ready
        deadline = time.monotonic() + settings.graceful_timeout_s + 5
        for worker in workers:
            try:
                worker.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
        if failure:
            raise BundleError(failure)
    finally:
        for worker in workers:
            worker.close()
        reservation.close()
        if grpc_reservation is not None:
            grpc_reservation.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _read_beats(workers: list[_Worker], timeout_s: float) -> None:
    fds = {w.watch.fd: w.watch for w in workers}
    try:
        readable, _, _ = select.select(list(fds), [], [], timeout_s)
    except (OSError, ValueError):
        time.sleep(timeout_s)
        return
    for fd in readable:
        fds[fd].read()


def _forget(worker: _Worker, metrics_dir: str) -> None:
    """Close a dead worker's channels and drop its live gauges from the shared metrics."""
    worker.close()
    with contextlib.suppress(Exception):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, metrics_dir)


if __name__ == "__main__":
    worker_main()
