"""Canary, shadow, live weight changes and clears on a real ``berth serve models:/iris@production --workers 2``
under a steady stream of requests from client threads, driven through the registry (berth rollout state).

Every caller gets an answer from exactly one version, and the right one: in a settled phase a keyed caller gets
the version its key's bucket names (the same on both workers), unkeyed callers split within a binomial bound; a
failing or slow shadow never changes a response; weight changes and clears under load lose no request."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

import berth
from berth.serving.slot import to_candidate
from support.rollout import register_versions
from support.server_process import ServerProcess
from tests.rollout.conftest import X, Y
from tests.rollout.models import Misbehaving

pytestmark = pytest.mark.slow
ROWS = [X.iloc[i].tolist() for i in range(0, 150, 10)]


@dataclass
class Answer:
    sent: float
    key: str | None
    row: int
    status: int | None
    version: str | None
    body: str


def client_loop(url: str, number: int, stop: threading.Event, answers: list[Answer], lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            key = f"caller-{number}-{i % 40}" if number % 2 == 0 else None  # half the clients send a route key
            row = i % len(ROWS)
            sent = time.monotonic()
            try:
                response = client.post("/predict", json={"features": ROWS[row]},
                                       headers={"x-berth-route-key": key} if key else {})
                answer = Answer(sent, key, row, response.status_code, response.headers.get("x-berth-model-version"),
                                response.text)
            except httpx.HTTPError as exc:
                answer = Answer(sent, key, row, None, None, f"{type(exc).__name__}: {exc}")
            with lock:
                answers.append(answer)


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
               and all(f'{k}="{v}"' in line for k, v in labels.items()))


def test_canary_and_shadow_from_the_registry_under_load(tmp_path: Path) -> None:
    home = tmp_path / "home"
    registry = register_versions(home)  # iris 1 (production), 2, 3
    fitted = LogisticRegression(max_iter=500).fit(X, Y)
    for number, (mode, seconds) in enumerate((("fail", 0.0), ("slow", 1.0)), start=4):  # versions 4 and 5
        path = tmp_path / f"misbehaving-{mode}"
        berth.save(Misbehaving(fitted, mode, seconds), path, sample=X.head(20), name="iris")
        assert registry.register(path, "iris").version == number
    poll = 0.3
    server = ServerProcess("models:/iris@production", "--workers", "2", "--poll-interval-s", str(poll), "--trust",
                           "--log-level", "warning", env={"BERTH_HOME": str(home), "BERTH_SHADOW_TIMEOUT_S": "0.3"})
    answers: list[Answer] = []
    lock, stop = threading.Lock(), threading.Event()
    try:
        server.wait_ready()
        server.wait_listening(2)
        baseline_body = {row: httpx.post(server.url + "/predict", json={"features": ROWS[row]}).text
                         for row in range(len(ROWS))}
        threads = [threading.Thread(target=client_loop, args=(server.url, n, stop, answers, lock), daemon=True)
                   for n in range(6)]
        for thread in threads:
            thread.start()

        def settle() -> float:
            """Wait until both workers applied the change (a few polls plus a candidate's load); the time after."""
            time.sleep(8 * poll + 3)
            return time.monotonic()

        def phase(since: float, seconds: float) -> list[Answer]:
            time.sleep(seconds)
            with lock:
                return [a for a in answers if a.sent >= since]

        time.sleep(1)
        registry.set_rollout("iris", 3, canary=20)
        settled = phase(settle(), 6)
        registry.set_rollout("iris", 3, canary=60)  # a live weight change
        changed = phase(settle(), 6)
        registry.clear_rollout("iris")
        cleared = phase(settle(), 3)
        registry.set_rollout("iris", 4, shadow=1.0)  # a failing shadow
        failing = phase(settle(), 4)
        registry.set_rollout("iris", 5, shadow=1.0)  # a slow shadow (1 s per call, 0.3 s timeout)
        slow = phase(settle(), 4)
        stop.set()
        for thread in threads:
            thread.join(30)
        shadow_errors = metric(server.url, "berth_shadow_requests_total", version="4", outcome="error")
        shadow_timeouts = metric(server.url, "berth_shadow_requests_total", version="5", outcome="timeout")
        shadow_dropped = metric(server.url, "berth_shadow_requests_total", version="5", outcome="dropped")
    finally:
        stop.set()
        server.stop()

    assert len(answers) > 1000
    assert [a for a in answers if a.status != 200] == []  # weight changes and clears under load lose nothing
    assert {a.version for a in answers} == {"1", "3"}  # a shadow never answers

    for percent, answered in ((20, settled), (60, changed)):
        keyed = [a for a in answered if a.key is not None]
        wrong = [a for a in keyed if a.version != ("3" if to_candidate(percent, a.key) else "1")]
        assert wrong == [], wrong[:5]  # sticky: each key gets the version its bucket names, on both workers
        unkeyed = [a for a in answered if a.key is None]
        n, hits = len(unkeyed), sum(a.version == "3" for a in unkeyed)
        assert n > 100
        assert abs(hits - n * percent / 100) < 5 * math.sqrt(n * percent / 100 * (1 - percent / 100)), (hits, n)
    assert {a.version for a in cleared} == {"1"}

    for answered in (failing, slow):
        assert len(answered) > 50
        assert all(a.version == "1" and a.body == baseline_body[a.row] for a in answered)
    assert shadow_errors > 0 and shadow_timeouts + shadow_dropped > 0
