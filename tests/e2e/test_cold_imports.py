"""A server whose model needs no scikit-learn imports none of the heavy libraries before it is ready.

A real ``berth serve --workers 1`` runs under ``support/modules_at_ready.py``, which writes ``sys.modules`` to a
file once ``/health/ready`` answers 200; the test reads it. The models are ONNX bundles converted from
scikit-learn (onnxruntime serves them). A bundle with a compiled twin belongs here too: add a row to ``BUNDLES``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import berth
from berth.compile import proven
from support.server_process import ROOT, ServerProcess
from tests.serving.conftest import IRIS_X, IRIS_Y, ROW

pytestmark = pytest.mark.slow
pytest.importorskip("skl2onnx")
pytest.importorskip("onnxruntime")

# none of these may be imported by a server whose models do not need them (scipy: scikit-learn's dependency)
NOT_BEFORE_READY = ("sklearn", "skops", "pandas", "matplotlib", "torch", "scipy")


def save_onnx(model: Any, path: Path) -> None:
    berth.save(model.fit(IRIS_X, IRIS_Y), path, sample=IRIS_X.head(20), reference=IRIS_X, format="onnx")


def save_twin(model: Any, path: Path) -> None:
    """A scikit-learn (skops) bundle with its compiled twin: the server predicts with the twin alone."""
    manifest = berth.save(model.fit(IRIS_X, IRIS_Y), path, sample=IRIS_X.head(20), reference=IRIS_X, compile=True)
    assert proven(manifest), manifest.compiled


BUNDLES: dict[str, Callable[[Path], None]] = {
    "onnx-logreg": lambda path: save_onnx(LogisticRegression(max_iter=1000), path),
    "onnx-forest": lambda path: save_onnx(RandomForestClassifier(n_estimators=20, random_state=0), path),
    "twin-logreg": lambda path: save_twin(LogisticRegression(max_iter=1000), path),
    "twin-forest": lambda path: save_twin(RandomForestClassifier(n_estimators=20, random_state=0), path),
}


def packages(modules: list[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


def modules_at_ready(bundle: Path, output: Path) -> list[str]:
    """Start a real server for ``bundle`` under the wrapper; the modules it had when it was first ready."""
    launcher = [sys.executable, str(ROOT / "support" / "modules_at_ready.py"), str(output)]
    server = ServerProcess(str(bundle), "--workers", "1", launcher=launcher)
    try:
        server.wait_ready()
        deadline = time.monotonic() + 30
        while not output.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        response = httpx.post(server.url + "/predict", json={"features": ROW})  # it does serve the model
        assert response.status_code == 200, response.text
    finally:
        server.stop()
    assert output.exists(), f"the wrapper wrote no module list:\n{server.output()}"
    modules: list[str] = json.loads(output.read_text())
    return modules


@pytest.mark.parametrize("kind", sorted(BUNDLES))
def test_ready_without_heavy_libraries(kind: str, tmp_path: Path) -> None:
    bundle = tmp_path / kind
    BUNDLES[kind](bundle)
    loaded = packages(modules_at_ready(bundle, tmp_path / "modules.json"))
    assert {"berth", "onnxruntime", "uvicorn"} <= loaded, "the list is not of a server that loaded the model"
    heavy = sorted(loaded.intersection(NOT_BEFORE_READY))
    assert not heavy, f"the server imported {', '.join(heavy)} before it was ready; import them where they are used"


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The same check on a scikit-learn (skops) bundle does see scikit-learn: the list is not empty by accident."""
    bundle = tmp_path / "skops"
    berth.save(LogisticRegression(max_iter=1000).fit(IRIS_X, IRIS_Y), bundle, sample=IRIS_X.head(20),
               compile=False)
    loaded = packages(modules_at_ready(bundle, tmp_path / "modules.json"))
    assert {"sklearn", "skops"} <= loaded
