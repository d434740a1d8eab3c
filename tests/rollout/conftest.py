"""A registry in a temporary BERTH_HOME with three versions of an iris model, for the live-rollout tests.

Versions 1 and 2 are forests that answer differently on purpose (trained on different halves of the data);
version 3 is a LogisticRegression. All three take the same four float columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import berth
from berth.registry import Registry
from tests.registry.conftest import backend_urls

X, Y = load_iris(return_X_y=True, as_frame=True)


@pytest.fixture
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "berth-home"
    monkeypatch.setenv("BERTH_HOME", str(home))
    monkeypatch.delenv("BERTH_REGISTRY_URL", raising=False)
    monkeypatch.delenv("BERTH_ARTIFACTS_URL", raising=False)
    yield home


def save_models(directory: Path) -> list[Path]:
    models = [RandomForestClassifier(n_estimators=5, random_state=0).fit(X[::2], Y[::2]),
              RandomForestClassifier(n_estimators=7, random_state=1).fit(X[1::2], Y[1::2]),
              LogisticRegression(max_iter=500).fit(X, Y)]
    paths = []
    for number, model in enumerate(models, start=1):
        path = directory / f"iris-{number}"
        berth.save(model, path, sample=X.head(20), reference=X, name="iris", overwrite=True)
        paths.append(path)
    return paths


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The registry backend, "sqlite-file" unless a test parametrizes it indirectly (see tests/registry)."""
    return getattr(request, "param", "sqlite-file")


@pytest.fixture
def iris_versions(registry_home: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The default registry (as the environment names it) holding iris versions 1-3, ``production`` on 1."""
    if backend != "sqlite-file":
        url, artifacts = backend_urls(request, tmp_path, backend)
        monkeypatch.setenv("BERTH_REGISTRY_URL", url)
        monkeypatch.setenv("BERTH_ARTIFACTS_URL", artifacts)
    registry = Registry()
    for number, path in enumerate(save_models(tmp_path / "bundles"), start=1):
        registry.register(path, "iris", aliases=["production"] if number == 1 else ())
    return registry


def other_columns_bundle(directory: Path) -> Path:
    """An iris-named model over different columns: an incompatible signature."""
    frame = pd.DataFrame({"a": X.iloc[:, 0], "b": X.iloc[:, 1]})
    path = directory / "iris-other"
    berth.save(LogisticRegression(max_iter=500).fit(frame, Y), path, sample=frame.head(20), name="iris",
               overwrite=True)
    return path
