"""Small real models and their bundles, saved with and without a compiled twin."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LogisticRegression

import berth

IRIS_X, IRIS_Y = load_iris(return_X_y=True, as_frame=True)
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True, as_frame=True)


@pytest.fixture(scope="session")
def iris_logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)


@pytest.fixture(scope="session")
def iris_twin_bundle(tmp_path_factory: pytest.TempPathFactory, iris_logistic: LogisticRegression) -> Path:
    path = tmp_path_factory.mktemp("compiled") / "iris"
    berth.save(iris_logistic, path, sample=IRIS_X.head(10), reference=IRIS_X, name="iris")
    return path


def frame(rows: list[list[float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=IRIS_X.columns)
