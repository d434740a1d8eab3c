"""`berth serve --backend ray`: a real command on a local Ray instance that it starts, with two replicas.

Two replicas answer (each names itself in ``x-berth-replica`` / ``x-berth-pid``); the answers are those of the
single-process server, byte for byte; ``/metrics`` sums the replicas whichever answers; a replica's process
killed with SIGKILL is replaced by Ray while requests keep being answered; SIGTERM removes everything.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server_process import ServerProcess
from tests.deploy.ray_support import require_ray
from tests.serving.conftest import IRIS_X, expected, make_client

pytestmark = pytest.mark.slow

ROWS = IRIS_X.iloc[[0, 50, 100, 149]].values.tolist()
REQUESTS = [  # (method, path, body): every protocol, a good and a bad request
    ("POST", "/predict", {"instances": ROWS, "probabilities": True}),
    ("POST", "/models/iris/predict", {"features": ROWS[1]}),
    ("POST", "/invocations", {"dataframe_split": {"columns": list(IRIS_X.columns), "data": ROWS}}),
    ("POST", "/v2/models/iris/infer", {"id": "req-1", "inputs": [{
        "name": "input-0", "shape": [4, 4], "datatype": "FP64", "data": [value for row in ROWS for value in row]}]}),
    ("GET", "/v2/models/iris", None),
    ("POST", "/predict", {"instances": [[5.1, "wide", 1.4, 0.2]]}),
    ("POST", "/models/nope/predict", {"features": ROWS[0]}),
]


@pytest.fixture(scope="module")
def ray_server(iris_bundle: Path) -> Iterator[ServerProcess]:
    require_ray()
    server = ServerProcess(str(iris_bundle), "--backend", "ray", "--replicas", "2", "--log-level", "warning")
    try:
        wait_ready(server, timeout=240)
        yield server
    finally:
        server.terminate()
        try:
            server.wait(120)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.wait(10)
        leftovers = process_group(server.process.pid)
        if leftovers:  # never leave Ray's processes running on a 2-core machine, even when the test failed
            os.killpg(server.process.pid, signal.SIGKILL)
        log = server.output()  # read and closed either way
        assert server.process.returncode == 0, log
        assert not leftovers, f"processes left after SIGTERM: {leftovers}"


def wait_ready(server: ServerProcess, timeout: float) -> None:
    """Until /health/ready says 200 (before the app is deployed, Ray's proxy answers 404 or 503 itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"berth serve exited with {server.process.returncode}:\n{server.output()}")
        try:
            if httpx.get(server.url + "/health/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not ready within {timeout} s")


def process_group(pgid: int) -> list[str]:
    """The processes still in the server's process group (Ray's raylet, GCS, workers...)."""
    listing = subprocess.run(["ps", "-eo", "pgid=,pid=,comm="], capture_output=True, text=True, check=True)
    return [line.strip() for line in listing.stdout.splitlines() if line.split()[0] == str(pgid)]


def replica_of(response: httpx.Response) -> tuple[str, int]:
    return response.headers["x-berth-replica"], int(response.headers["x-berth-pid"])


def predict(server: ServerProcess) -> httpx.Response:
    response = httpx.post(server.url + "/predict", json={"instances": ROWS}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def replicas_seen(server: ServerProcess, wanted: int = 2, attempts: int = 200) -> dict[str, int]:
    """Replica id -> pid of the replicas that answered, asking until ``wanted`` distinct ones did."""
    seen: dict[str, int] = {}
    for _ in range(attempts):
        replica, pid = replica_of(predict(server))
        seen[replica] = pid
        if len(seen) >= wanted:
            break
    return seen


def test_two_replicas_answer(ray_server: ServerProcess, iris_model: object) -> None:
    seen = replicas_seen(ray_server)
    assert len(seen) == 2, seen
    assert len(set(seen.values())) == 2 and os.getpid() not in seen.values()
    assert predict(ray_server).json()["predictions"] == expected(iris_model, ROWS)


def test_answers_are_those_of_the_single_process_server(ray_server: ServerProcess, iris_bundle: Path) -> None:
    with make_client([iris_bundle]) as local:
        for method, path, body in REQUESTS:
            ours = local.request(method, path, json=body)
            theirs = httpx.request(method, ray_server.url + path, json=body, timeout=30)
            assert (theirs.status_code, theirs.content) == (ours.status_code, ours.content), path
            assert theirs.headers.get("x-berth-model-version") == ours.headers.get("x-berth-model-version")
            assert "x-berth-replica" in theirs.headers


def metadata_count(text: str) -> float:
    match = re.search(r'^berth_requests_total\{[^}]*route="/v2/metadata"[^}]*status="200"[^}]*\} (\S+)$', text,
                      re.MULTILINE)
    return float(match[1]) if match else 0.0


def test_metrics_sum_every_replica_whichever_answers(ray_server: ServerProcess) -> None:
    before = metadata_count(httpx.get(ray_server.url + "/metrics", timeout=30).text)
    answered = {replica_of(httpx.get(ray_server.url + "/v2/models/iris", timeout=30))[0] for _ in range(20)}
    assert len(answered) == 2, "both replicas should have counted some of the requests"
    counts: dict[str, float] = {}
    for _ in range(200):
        response = httpx.get(ray_server.url + "/metrics", timeout=30)
        counts[replica_of(response)[0]] = metadata_count(response.text)
        if len(counts) == 2:
            break
    assert len(counts) == 2
    assert set(counts.values()) == {before + 20}, counts


def test_a_killed_replica_is_replaced_while_requests_are_answered(ray_server: ServerProcess,
                                                                    iris_model: object) -> None:
    seen = replicas_seen(ray_server)
    victim_replica, victim = sorted(seen.items())[0]
    os.kill(victim, signal.SIGKILL)
    want = expected(iris_model, ROWS)
    deadline = time.monotonic() + 180
    answered: dict[str, int] = {}
    while time.monotonic() < deadline:  # every request is answered, correctly, while Ray brings a new one up
        response = predict(ray_server)
        assert response.json()["predictions"] == want
        replica, pid = replica_of(response)
        assert pid != victim
        answered[replica] = pid
        if len(answered) == 2:
            break
        time.sleep(0.1)
    assert len(answered) == 2, f"no second replica came back within 180 s: {answered}"
    assert victim_replica not in answered and victim not in answered.values()
