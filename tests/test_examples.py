"""The runnable examples train, save a bundle, and the bundle loads back and predicts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import berth

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, output: Path) -> str:
    script = ROOT / "examples" / name / "train.py"
    result = subprocess.run([sys.executable, str(script), str(output)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_iris_example(tmp_path: Path) -> None:
    output = tmp_path / "iris"
    stdout = run_example("iris", output)
    assert str(output) in stdout
    assert "accuracy" in stdout

    model = berth.load(output)
    assert model.name == "iris"
    assert model.manifest.flavor == "sklearn"
    assert 0.8 <= model.manifest.metrics["accuracy"] <= 1.0
    assert model.manifest.params["n_estimators"] == 100
    assert model.manifest.reference is not None
    row = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5,
           "petal length (cm)": 1.4, "petal width (cm)": 0.2}
    predictions = model.predict([row])
    assert predictions.tolist() == [0]
    probabilities = model.predict_proba([row])
    assert probabilities.shape == (1, 3)


@pytest.mark.slow
def test_diabetes_example(tmp_path: Path) -> None:
    output = tmp_path / "diabetes"
    stdout = run_example("diabetes", output)
    assert "r2" in stdout

    model = berth.load(output)
    assert model.name == "diabetes"
    assert set(model.manifest.metrics) == {"r2", "mae"}
    assert model.manifest.metrics["r2"] > 0.2
    columns = [column.name for column in model.signature.columns]
    assert len(columns) == 10
    predictions = model.predict([dict.fromkeys(columns, 0.0), dict.fromkeys(columns, 0.05)])
    assert predictions.shape == (2,)
    assert np.all(np.isfinite(predictions))
