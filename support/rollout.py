"""The live-rollout load driver: a real ``berth serve models:/iris@production`` under a steady stream of requests
while the alias moves between three registered versions.

``run_scenario(home)`` registers three iris versions in the registry of ``home`` (SQLite + file store, the
defaults of ``BERTH_HOME``), starts the server, runs client threads, moves the alias, and returns what every
request got and how fast each move was followed. ``bench/rollout.py`` reports it;
``tests/e2e/test_rollout_under_load.py`` asserts on it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.server_process import ServerProcess

ROW = {"features": [5.1, 3.5, 1.4, 0.2]}
MOVES = [2, 3, 1, 3, 2, 1, 2, 3]


@dataclass
class Answer:
    sent: float
    received: float
    status: int | None
    version: str | None
    error: str | None = None


@dataclass
class Move:
    to: int
    at: float
    follow_s: float | None = None
    load_s: float | None = None


@dataclass
class Scenario:
    answers: list[Answer] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    poll_interval_s: float = 0.5
    workers: int = 2
    clients: int = 8

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def held(self) -> set[str]:
        return {"1"} | {str(m.to) for m in self.moves}

    def strays(self) -> list[Answer]:
        """Answers from a version the alias did not hold at any time before the answer was received."""
        bad = []
        for answer in self.answers:
            if answer.version is None:
                continue
            held = {"1"} | {str(m.to) for m in self.moves if m.at <= answer.received}
            if answer.version not in held:
                bad.append(answer)
        return bad


def register_versions(home: Path) -> Any:
    """Three iris versions in the registry of ``home``; ``production`` on version 1."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import berth
    from berth.registry import Registry

    X, y = load_iris(return_X_y=True, as_frame=True)
    models = [RandomForestClassifier(n_estimators=20, random_state=0).fit(X[::2], y[::2]),
              RandomForestClassifier(n_estimators=30, random_state=1).fit(X[1::2], y[1::2]),
              LogisticRegression(max_iter=500).fit(X, y)]
    registry = Registry(f"sqlite:///{home / 'registry.db'}", home / "artifacts")  # the defaults of BERTH_HOME
    for number, model in enumerate(models, start=1):
        bundle = home / "bundles" / f"iris-{number}"
        berth.save(model, bundle, sample=X.head(20), reference=X, name="iris", overwrite=True)
        registry.register(bundle, "iris", aliases=["production"] if number == 1 else ())
    return registry


def client_loop(url: str, stop: threading.Event, answers: list[Answer], lock: threading.Lock) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                response = client.post("/predict", json=ROW)
                answer = Answer(sent, time.monotonic(), response.status_code,
                                response.headers.get("x-berth-model-version"),
                                None if response.status_code == 200 else response.text[:200])
            except httpx.HTTPError as exc:
                answer = Answer(sent, time.monotonic(), None, None, f"{type(exc).__name__}: {exc}")
            with lock:
                answers.append(answer)


def load_seconds(url: str, version: int) -> float | None:
    text = httpx.get(url + "/metrics", timeout=10).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("berth_model_load_seconds{") and f'version="{version}"' in line]
    return max(values) if values else None


def run_scenario(home: Path, *, workers: int = 2, clients: int = 8, poll_interval_s: float = 0.5,
                 moves: int = 5, settle_s: float = 1.0, env: dict[str, str] | None = None) -> Scenario:
    registry = register_versions(home)
    scenario = Scenario(poll_interval_s=poll_interval_s, workers=workers, clients=clients)
    server = ServerProcess("models:/iris@production", "--workers", str(workers), "--poll-interval-s",
                           str(poll_interval_s), "--log-level", "warning",
                           env={"BERTH_HOME": str(home), **(env or {})})
    try:
        server.wait_ready()
        stop, lock = threading.Event(), threading.Lock()
        threads = [threading.Thread(target=client_loop, args=(server.url, stop, scenario.answers, lock),
                                    daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(settle_s)
        for target in MOVES[:moves]:
            move = Move(target, time.monotonic())
            registry.set_alias("iris", "production", target)
            scenario.moves.append(move)
            deadline = move.at + 120
            while time.monotonic() < deadline:  # until a full round of answers comes from the new version
                time.sleep(poll_interval_s / 2)
                with lock:
                    recent = [a for a in scenario.answers if a.sent > time.monotonic() - poll_interval_s / 2]
                if len(recent) >= clients and all(a.version == str(target) for a in recent):
                    break
            time.sleep(settle_s)
            with lock:
                older = [a.sent for a in scenario.answers
                         if a.sent >= move.at and a.version is not None and a.version != str(target)]
            move.follow_s = (max(older) - move.at) if older else 0.0
            move.load_s = load_seconds(server.url, target)
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        server.stop()
    return scenario
