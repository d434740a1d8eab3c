"""Start `berth serve` as a real subprocess on a free loopback port, and stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from support.ports import free_port

__all__ = ["BERTH", "ROOT", "ServerProcess", "free_port", "listening_sockets"]

BERTH = Path(sys.executable).parent / "berth"
ROOT = Path(__file__).resolve().parents[1]


def listening_sockets(port: int) -> int:
    """How many IPv4 TCP sockets listen on ``port`` (from /proc/net/tcp; state 0A is LISTEN)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


class ServerProcess:
    _output: str | None = None  # what the server printed, once read after it exited

    def __init__(self, *args: str, env: dict[str, str] | None = None, launcher: Sequence[str] | None = None) -> None:
        """``berth serve ARGS`` on a free port; ``launcher`` replaces the ``berth`` script (a wrapper taking the
        same arguments, e.g. ``[python, support/modules_at_ready.py, OUT]``)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [*(launcher or [str(BERTH)]), "serve", *args, "--host", "127.0.0.1", "--port", str(self.port)]
        # the repository root on the path, so bundles of test-only model classes (tests.serving.models) load
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PYTHONPATH": path, **(env or {})},
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.output()}")
            try:
                response = httpx.get(self.url + "/health/ready", timeout=2)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 200:
                return
            if response is not None and response.json().get("problems"):
                self.stop()
                raise RuntimeError(f"server cannot serve: {response.json()['problems']}\n{self.output()}")
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready within {timeout} s:\n{self.output()}")

    def wait_listening(self, sockets: int, timeout: float = 90) -> None:
        """Wait until ``sockets`` listening sockets are bound to the port: with ``--workers N`` each worker
        binds its own (SO_REUSEPORT) once its models are loaded, so the first ready one does not mean all are."""
        deadline = time.monotonic() + timeout
        while listening_sockets(self.port) < sockets:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {sockets} workers listening after {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 60) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to the process group after 30 s; the output pipe is drained and closed."""
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.output()

    def output(self) -> str:
        """What the server printed, once it has exited (read once, then the pipe is closed)."""
        if self.process.poll() is None:
            return "(still running)"
        if self._output is None:
            assert self.process.stdout is not None
            with self.process.stdout:
                self._output = self.process.stdout.read()
        return self._output
