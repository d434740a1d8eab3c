"""Any object with a ``predict`` method, written with cloudpickle. Pickle runs code: loading needs trust."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.errors import FlavorError
from berth.flavors.base import Flavor, Predictor, SavedPayload

if TYPE_CHECKING:
    from berth.manifest import Manifest

PAYLOAD = "model.cloudpickle"


class PythonPredictor(Predictor):
    def __init__(self, model: Any, input_target: str = "ndarray") -> None:
        self.model = model
        self.input_target = "dataframe" if input_target == "dataframe" else "ndarray"
        classes = getattr(model, "classes_", None)
        self.classes = list(classes) if classes is not None else None

    @property
    def has_proba(self) -> bool:
        return callable(getattr(self.model, "predict_proba", None))

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(self.model.predict(inputs))

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if not self.has_proba:
            return super().predict_proba(inputs)
        return np.asarray(self.model.predict_proba(inputs))


class PythonFlavor(Flavor):
    name = "python"
    formats = ("cloudpickle",)
    unsafe_formats = frozenset({"cloudpickle"})
    priority = 1000  # the catch-all: asked last

    def handles(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None))

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        import cloudpickle

        input_target = options.get("input", "dataframe")
        if input_target not in ("dataframe", "ndarray"):
            raise FlavorError(f"input must be 'dataframe' or 'ndarray', not {input_target!r}")
        try:
            (directory / PAYLOAD).write_bytes(cloudpickle.dumps(model))
        except Exception as exc:  # cloudpickle raises many kinds for unpicklable objects
            raise FlavorError(f"cannot pickle this model: {exc}") from exc
        return SavedPayload([PAYLOAD], ["cloudpickle", "numpy"], PythonPredictor(model, input_target),
                            {"input": input_target})

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        self.require_trust(manifest.format, trust)
        import cloudpickle

        model = cloudpickle.loads(self.payload(directory, manifest, PAYLOAD).read_bytes())
        return PythonPredictor(model, manifest.flavor_options.get("input", "dataframe"))
