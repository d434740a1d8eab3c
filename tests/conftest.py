"""Shared fixtures: the iris data, a small forest trained on it, and a fresh bundle of it per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth


@pytest.fixture(scope="session", autouse=True)
def monitor_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers started by tests log predictions under a temporary directory, never under ~/.berth."""
    path = tmp_path_factory.mktemp("monitoring")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BERTH_MONITOR_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def iris_data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def iris_forest(iris_data: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    X, y = iris_data
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture
def iris_forest_bundle(tmp_path: Path, iris_forest: RandomForestClassifier,
                       iris_data: tuple[pd.DataFrame, pd.Series]) -> Path:
    """A skops bundle of the iris forest with a sample and reference statistics, in a fresh directory."""
    X, _ = iris_data
    path = tmp_path / "iris"
    berth.save(iris_forest, path, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               tags={"team": "ml"})
    return path
