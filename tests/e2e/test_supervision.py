"""Supervisor and workers on real processes: workers die with a killed supervisor, hung workers are replaced,
and the metrics directories a crash leaves behind are removed by the next start."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import berth
from berth.processes import pid_alive
from berth.serving.supervision import clean_stale_metrics_dirs
from support.server_process import ServerProcess, listening_sockets
from tests.serving.conftest import ROW
from tests.serving.models import HangsOnMarker

pytestmark = pytest.mark.slow

BOUND_S = 60  # generous upper bounds for things that take about a second: the machine is shared


def wait_for(condition: Callable[[], bool], what: str, timeout: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def workers_of(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(p) for p in children.read().split()]


def all_fresh_requests_succeed(server: ServerProcess, count: int = 30, row: list[float] = ROW) -> None:
    for _ in range(count):  # a new connection each: the kernel spreads them over every worker's socket
        response = httpx.post(server.url + "/predict", json={"features": row}, timeout=20)
        assert response.status_code == 200, response.text


def test_workers_die_with_a_killed_supervisor_and_the_next_start_cleans_up(iris_bundle: Path,
                                                                            tmp_path: Path) -> None:
    env = {"TMPDIR": str(tmp_path)}
    first = ServerProcess(str(iris_bundle), "--workers", "2", env=env)
    try:
        first.wait_ready()
        first.wait_listening(2)
        workers = workers_of(first.process.pid)
        assert len(workers) == 2
        [left_behind] = tmp_path.glob("berth-metrics-*")
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(10)
        wait_for(lambda: not any(pid_alive(pid) for pid in workers), "workers gone after the supervisor's SIGKILL")
        wait_for(lambda: listening_sockets(first.port) == 0, "the port is free")
        assert left_behind.exists()  # a SIGKILLed supervisor cannot clean up after itself
    finally:
        first.stop()
    second = ServerProcess(str(iris_bundle), "--workers", "2", env=env)
    try:
        second.wait_ready()
        assert not left_behind.exists()
        assert len(list(tmp_path.glob("berth-metrics-*"))) == 1  # its own
        all_fresh_requests_succeed(second, 5)
    finally:
        second.stop()


def test_a_stopped_worker_is_killed_and_replaced(iris_bundle: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "2", env={"BERTH_HEARTBEAT_TIMEOUT_S": "3"})
    try:
        server.wait_ready()
        server.wait_listening(2)
        stopped = workers_of(server.process.pid)[0]
        os.kill(stopped, signal.SIGSTOP)
        wait_for(lambda: stopped not in workers_of(server.process.pid), "the stopped worker killed and collected")
        server.wait_listening(2)
        server.wait_ready()
        all_fresh_requests_succeed(server)
        server.terminate()
        assert server.wait(60) == 0
        assert "sent no heartbeat" in server.output()
    finally:
        server.stop()


def test_a_worker_stuck_in_predict_is_replaced_and_readiness_shows_it(tmp_path: Path) -> None:
    marker = tmp_path / "hang"
    berth.save(HangsOnMarker(str(marker)), tmp_path / "model", sample=[[1.0]])
    server = ServerProcess(str(tmp_path / "model"), "--trust", "--workers", "2",
                           env={"BERTH_HEARTBEAT_TIMEOUT_S": "3", "BERTH_TIMEOUT_S": "1"})
    try:
        server.wait_ready()
        server.wait_listening(2)
        marker.touch()
        response = httpx.post(server.url + "/predict", json={"features": [1.0]}, timeout=30)
        assert response.status_code == 504  # the request gets its timeout; the model's thread stays stuck
        stuck = int(Path(str(marker) + ".pid").read_text())
        marker.unlink()  # from now on predict works again, in a fresh worker
        seen_unready = False
        while pid_alive(stuck) and stuck in workers_of(server.process.pid):
            with contextlib.suppress(httpx.TransportError):
                seen_unready |= httpx.get(server.url + "/health/ready", timeout=2).status_code == 503
            time.sleep(0.05)
        wait_for(lambda: httpx.get(server.url + "/health/ready", timeout=5).status_code == 200, "ready again")
        server.wait_listening(2)
        all_fresh_requests_succeed(server, row=[1.0])
        server.terminate()
        assert server.wait(60) == 0
        assert seen_unready  # the stuck worker's own 503, then its sibling's until the replacement serves
        assert "sent no heartbeat" in server.output()
    finally:
        server.stop()


def test_only_stale_metrics_dirs_of_this_user_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = tmp_path / f"berth-metrics-{gone.pid}-abc"
    live = tmp_path / f"berth-metrics-{os.getpid()}-def"
    legacy_stale = tmp_path / "berth-metrics-old1"
    legacy_live = tmp_path / "berth-metrics-old2"
    unrelated = tmp_path / "other-dir"
    for path in (stale, live, legacy_stale, legacy_live, unrelated):
        path.mkdir()
    (stale / f"counter_{gone.pid}.db").write_bytes(b"x")
    (legacy_stale / f"counter_{gone.pid}.db").write_bytes(b"x")
    (legacy_live / f"gauge_livesum_{os.getpid()}.db").write_bytes(b"x")
    removed = clean_stale_metrics_dirs(tmp_path)
    assert sorted(removed) == sorted([stale, legacy_stale])
    assert live.exists() and legacy_live.exists() and unrelated.exists()
