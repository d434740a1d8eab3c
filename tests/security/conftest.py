"""Fixtures for the security tests: one small real bundle, and its manifest and payload as bytes to craft with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import berth
from berth.manifest import MANIFEST_NAME

IRIS_X, IRIS_Y = load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real scikit-learn bundle (skops): a manifest and one payload file of a few kB (no compiled twin: the
    crafted twins are tests/compile/test_bundle.py's)."""
    model = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
    path = tmp_path_factory.mktemp("security") / "iris"
    berth.save(model, path, sample=IRIS_X.head(5), name="iris", compile=False)
    return path


@pytest.fixture(scope="session")
def manifest_data(small_bundle: Path) -> dict[str, Any]:
    return json.loads((small_bundle / MANIFEST_NAME).read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def payload(small_bundle: Path, manifest_data: dict[str, Any]) -> tuple[str, bytes]:
    (entry,) = manifest_data["files"]
    return entry["path"], (small_bundle / entry["path"]).read_bytes()
