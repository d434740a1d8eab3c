"""Keras 3 models, written in the native ``.keras`` format and read back with ``safe_mode=True``.

Safe mode refuses to deserialize code (``Lambda`` layers and the like), so loading needs no trust; a model
that needs it fails at save time, where berth reads the file back once to be sure it loads. The Keras backend
the model was saved with is recorded; on load, if ``KERAS_BACKEND`` is unset and Keras not yet imported, berth
selects that backend before importing Keras.

Options (keywords of ``berth.save``): ``classes=[...]`` makes the model a classifier: ``predict`` returns the
class of the largest output and ``predict_proba`` the outputs, read as probabilities (the usual final softmax;
a single sigmoid column with two classes is read as the second class's probability). A model that ends in
logits says ``output="logits"``: a softmax (or sigmoid) is applied. ``input_dtype=`` overrides the input
dtype, else the model's declared input dtype (``keras.Input(dtype=...)``), else float32, or the sample's
integer dtype when the model refuses floats.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.errors import FlavorError
from berth.flavors.base import Flavor, Predictor, SavedPayload, class_path
from berth.flavors.network import (
    COMMON_OPTIONS,
    NetworkPredictor,
    check_options,
    check_same,
    classification_options,
    first_line,
    input_dtype_for,
    loaded_options,
    sample_array,
)

if TYPE_CHECKING:
    from berth.manifest import Manifest

PAYLOAD = "model.keras"
MODEL = "keras.src.models.model.Model"
BACKEND_MODULES = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}
KNOWN_BACKENDS = frozenset({"tensorflow", "torch", "jax", "numpy", "openvino"})
SMALL_BATCH = 1024  # up to this many rows, one predict_on_batch call; beyond, predict in batches
BATCH_SIZE = 256


class KerasPredictor(NetworkPredictor):
    def __init__(self, model: Any, *, classes: list[Any] | None = None, output: str = "probabilities",
                 input_dtype: str = "float32") -> None:
        super().__init__(classes=classes, output=output, input_dtype=input_dtype)
        self.model = model

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        if len(inputs) <= SMALL_BATCH:  # predict() sets up a data pipeline per call: slow for a request
            result = self.model.predict_on_batch(inputs)
        else:
            result = self.model.predict(inputs, batch_size=BATCH_SIZE, verbose=0)
        if isinstance(result, tuple | list):
            result = result[0]
        return np.asarray(result)


def backend_libraries(backend: str) -> list[str]:
    module = BACKEND_MODULES.get(backend)
    if module is None:
        return []
    return sorted(metadata.packages_distributions().get(module, [module]))


def input_spec(model: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The input signature and dtype a functional or sequential model declares (a subclassed one: none)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None, None
    if not inputs or len(inputs) != 1:
        return None, None
    shape = [d if isinstance(d, int) else -1 for d in inputs[0].shape]
    dtype = str(inputs[0].dtype)
    if len(shape) == 2 and shape[1] > 0:
        columns = [{"name": f"x{i}", "dtype": dtype} for i in range(shape[1])]
        return {"layout": "table", "columns": columns}, dtype
    if not shape:
        return None, dtype
    return {"layout": "tensor", "tensor": {"dtype": dtype, "shape": [-1, *shape[1:]]}}, dtype


def select_backend(backend: object) -> None:
    """Use the saved backend, unless the caller chose one or Keras is imported already (it is then fixed).

    The value comes from the manifest, so only a backend Keras knows may be set in the environment.
    """
    if backend is not None and backend not in KNOWN_BACKENDS:
        raise FlavorError(f"the bundle names the Keras backend {str(backend)[:40]!r}; Keras has "
                          f"{', '.join(sorted(KNOWN_BACKENDS))}")
    if backend and "KERAS_BACKEND" not in os.environ and "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = str(backend)


def load_model(path: Path) -> Any:
    import keras

    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # safe-mode refusals are ValueErrors; unknown custom objects TypeErrors
        raise FlavorError(f"Keras cannot load {path.name} in safe mode: {first_line(exc)}") from exc


class KerasFlavor(Flavor):
    name = "keras"
    formats = ("keras",)
    priority = 90  # before torch: with the torch backend a Keras model is a torch.nn.Module too

    def handles(self, model: Any) -> bool:
        return MODEL in class_path(model)

    def save(self, model: Any, directory: Path, *, format: str, sample: Any,
             options: dict[str, Any]) -> SavedPayload:
        import keras

        check_options(self.name, options, COMMON_OPTIONS)
        spec, declared = input_spec(model)
        values = sample_array(sample) if sample is not None else None
        dtype = input_dtype_for(values, options, KerasPredictor(model).raw, declared)
        saved: dict[str, Any] = {**classification_options(options, "probabilities"), "input_dtype": dtype,
                                 "backend": keras.backend.backend()}
        path = directory / PAYLOAD
        try:
            model.save(path)
        except Exception as exc:  # unbuilt models, unserializable layers, ...
            raise FlavorError(f"Keras cannot save this model: {first_line(exc)}") from exc
        predictor = KerasPredictor(load_model(path), **predictor_options(saved))
        if values is not None:
            inputs = values.astype(dtype)
            check_same(KerasPredictor(model).raw(inputs), predictor.raw(inputs), "saved .keras model")
        elif spec is not None:
            saved["input_spec"] = spec
        libraries = ["keras", "numpy", *backend_libraries(saved["backend"])]
        return SavedPayload([PAYLOAD], libraries, predictor, saved)

    def load(self, directory: Path, manifest: Manifest, *, trust: bool,
             trusted_types: list[str]) -> Predictor:
        path = self.payload(directory, manifest, PAYLOAD)
        select_backend(manifest.flavor_options.get("backend"))
        return KerasPredictor(load_model(path), **predictor_options(manifest.flavor_options))


def predictor_options(options: dict[str, Any]) -> dict[str, Any]:
    checked = loaded_options(options, "probabilities")
    return {key: checked[key] for key in ("classes", "output", "input_dtype")}
