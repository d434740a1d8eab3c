"""Fixtures for serving tests: real bundles of small real models, and in-process clients of the real app."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth
from berth.serving.app import create_app
from berth.serving.settings import ServeSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

IRIS_X, IRIS_Y = load_iris(return_X_y=True, as_frame=True)
ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(scope="session")
def iris_model() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(IRIS_X, IRIS_Y)


@pytest.fixture(scope="session")
def iris_bundle(tmp_path_factory: pytest.TempPathFactory, iris_model: RandomForestClassifier) -> Path:
    path = tmp_path_factory.mktemp("bundles") / "iris"
    berth.save(iris_model, path, sample=IRIS_X.head(20), reference=IRIS_X, name="iris")
    return path


def make_client(sources: list[Any], **settings: Any) -> TestClient:
    app = create_app(sources, ServeSettings(**settings), load_in_background=False)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(iris_bundle: Path) -> Iterator[TestClient]:
    with make_client([iris_bundle]) as test_client:
        yield test_client


def expected(model: RandomForestClassifier, rows: list[list[float]]) -> list[int]:
    return model.predict(pd.DataFrame(rows, columns=IRIS_X.columns)).tolist()
