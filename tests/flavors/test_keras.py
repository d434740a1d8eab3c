from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")  # the backend comes from conftest (torch unless KERAS_BACKEND is set)

import berth  # noqa: E402
from berth.errors import FlavorError, IntegrityError, PredictionError  # noqa: E402
from berth.flavors.base import flavor_for  # noqa: E402
from berth.flavors.keras import KerasFlavor, select_backend  # noqa: E402

pytestmark = pytest.mark.filterwarnings(  # keras' torch backend on numpy 2, not berth
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
Iris = tuple[pd.DataFrame, pd.Series]
CLASSES = ["setosa", "versicolor", "virginica"]


def mlp(last_activation: str | None = "softmax") -> object:
    """A tiny MLP with seeded weights: four inputs, three outputs."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3, activation=last_activation)])


def outputs(model: object, features: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict(features.to_numpy(dtype="float32"), verbose=0))  # type: ignore[attr-defined]


def test_classifier_round_trip(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp()
    manifest = berth.save(model, tmp_path / "mlp", sample=features.head(10), classes=CLASSES)

    assert (manifest.flavor, manifest.format) == ("keras", "keras")
    assert [f.path for f in manifest.files] == ["model.keras"]
    assert {"keras", "numpy", keras.backend.backend()} <= set(manifest.libraries)
    assert manifest.flavor_options["backend"] == keras.backend.backend()
    assert manifest.signature is not None and manifest.signature.outputs.classes == CLASSES

    loaded = berth.load(tmp_path / "mlp")
    expected = outputs(model, features)
    requests = [features.to_numpy().tolist(), features.to_dict(orient="list"), features]
    for request in requests:
        assert list(loaded.predict(request)) == [CLASSES[i] for i in expected.argmax(axis=1)]
        np.testing.assert_allclose(loaded.predict_proba(request), expected, rtol=1e-5, atol=1e-6)


def test_raw_outputs_without_classes(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp(last_activation=None)
    berth.save(model, tmp_path / "raw", sample=features.head(5))

    loaded = berth.load(tmp_path / "raw")
    np.testing.assert_allclose(loaded.predict(features), outputs(model, features), rtol=1e-5, atol=1e-6)
    assert not loaded.has_proba
    with pytest.raises(PredictionError):
        loaded.predict_proba(features.head(2))


def test_logits_are_read_through_a_softmax(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp(last_activation=None)
    berth.save(model, tmp_path / "logits", sample=features.head(5), classes=CLASSES, output="logits")

    logits = outputs(model, features)
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loaded = berth.load(tmp_path / "logits")
    np.testing.assert_allclose(loaded.predict_proba(features), softmax, rtol=1e-5, atol=1e-6)


def test_without_a_sample_the_model_declares_its_input(tmp_path: Path, iris: Iris) -> None:
    features, _ = iris
    model = mlp()
    manifest = berth.save(model, tmp_path / "mlp", classes=CLASSES)

    assert manifest.signature is not None and manifest.signature.names == ["x0", "x1", "x2", "x3"]
    assert "input_spec" not in manifest.flavor_options
    loaded = berth.load(tmp_path / "mlp")
    rows = features.head(3).to_numpy().tolist()
    np.testing.assert_allclose(loaded.predict_proba(rows), outputs(model, features.head(3)), rtol=1e-5, atol=1e-6)


def test_bad_options(tmp_path: Path) -> None:
    with pytest.raises(FlavorError, match="at least two"):
        berth.save(mlp(), tmp_path / "a", classes=["only"])
    with pytest.raises(FlavorError, match="pass classes"):
        berth.save(mlp(), tmp_path / "b", output="logits")
    with pytest.raises(FlavorError, match="unknown option"):
        berth.save(mlp(), tmp_path / "c", clases=CLASSES)


def test_code_in_the_model_is_refused_at_save(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2)])
    with pytest.raises(FlavorError, match="safe mode"):
        berth.save(model, tmp_path / "lambda")
    assert not (tmp_path / "lambda").exists()


def test_a_tampered_payload_is_refused(tmp_path: Path, iris: Iris, tamper: Callable[[Path], None]) -> None:
    berth.save(mlp(), tmp_path / "mlp", sample=iris[0].head(5))
    tamper(tmp_path / "mlp" / "model.keras")
    with pytest.raises(IntegrityError, match="model.keras"):
        berth.load(tmp_path / "mlp")


def test_backend_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "keras")
    select_backend("jax")
    assert os.environ["KERAS_BACKEND"] == "jax"

    monkeypatch.setenv("KERAS_BACKEND", "torch")
    select_backend("jax")  # the caller's choice wins
    assert os.environ["KERAS_BACKEND"] == "torch"

    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setitem(sys.modules, "keras", keras)
    select_backend("jax")  # too late: keras chose its backend when it was imported
    assert "KERAS_BACKEND" not in os.environ


def test_detection() -> None:
    flavor = KerasFlavor()
    model = mlp()
    assert flavor.handles(model) and flavor_for(model).name == "keras"  # with the torch backend: a Module too
    assert not flavor.handles(object())
    assert not flavor.unsafe_formats


def test_importing_the_flavor_imports_no_framework(
        frameworks_imported: Callable[[str, tuple[str, ...]], list[str]]) -> None:
    assert frameworks_imported("berth.flavors.keras", ("keras", "torch", "tensorflow", "jax")) == []
