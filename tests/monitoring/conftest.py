"""Fixtures for monitoring tests: the iris bundle, a store in a fresh directory, records as a server queues them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import berth
from berth.model import LoadedModel
from berth.monitoring.log import PendingRecord, PredictionLog
from berth.monitoring.store import Store
from tests.serving.conftest import IRIS_X, IRIS_Y, iris_bundle, iris_model  # noqa: F401

FEATURES = list(IRIS_X.columns)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "monitoring")


@pytest.fixture(scope="session")
def loaded(iris_bundle: Path) -> LoadedModel:  # noqa: F811
    return berth.load(iris_bundle)


def log_rows(store: Store, model: LoadedModel, rows: np.ndarray, *, start: float | None = None, step: float = 0.01,
             prefix: str = "r", probabilities: bool = True, version: str = "v1") -> list[str]:
    """Log one request per row through a real PredictionLog, as the server does; returns the request ids."""
    start = time.time() if start is None else start
    log = PredictionLog(store)
    frame = IRIS_X.iloc[:0]._constructor(rows, columns=FEATURES)
    predictions = np.asarray(model.predict(frame))
    proba = np.asarray(model.predict_proba(frame)) if probabilities else None
    ids = []
    for i, row in enumerate(rows):
        ids.append(f"{prefix}{i}")
        log.offer(PendingRecord(start + i * step, "iris", version, ids[-1], [row.tolist()], predictions[i:i + 1],
                                proba[i:i + 1] if proba is not None else None, 0.002, model))
    log.flush()
    return ids


def reference_rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return IRIS_X.to_numpy()[rng.integers(0, len(IRIS_X), n)]


def true_labels(rows: np.ndarray) -> list[Any]:
    """The iris class of each row (rows are drawn from the data set, so each matches one of its rows)."""
    lookup = {tuple(r): int(c) for r, c in zip(IRIS_X.to_numpy().tolist(), IRIS_Y, strict=True)}
    return [lookup[tuple(r)] for r in rows.tolist()]
