"""The runtime side of a compiled twin: an onnxruntime session behind the :class:`Predictor` interface.

Imports numpy, onnxruntime and berth's light modules only: loading and predicting with a twin never imports
scikit-learn, skops or pandas (a server whose models have twins starts without them). The answers have the
original predictor's shape and dtype: labels are the original class labels (rebuilt from the manifest with
their dtype), probabilities float64 in the original column order, regression values the original's dtype.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.compile import RUNTIME, TWIN_FILE
from berth.errors import BundleError, FlavorError, PredictionError
from berth.flavors.base import Predictor

if TYPE_CHECKING:
    from berth.manifest import Manifest

PROVIDERS = ["CPUExecutionProvider"]
LABEL_KINDS = frozenset("biufOU")


def runtime_available() -> bool:
    return importlib.util.find_spec(RUNTIME) is not None


class TwinPredictor(Predictor):
    """Predicts with the ONNX twin; answers exactly as the original predictor would, in shape and dtype."""

    input_target = "ndarray"
    bounded_time = True  # a graph of standard operators run by onnxruntime: cheap calls may run inline

    def __init__(self, session: Any, section: dict[str, Any]) -> None:
        self.session = session
        self.input_name: str = session.get_inputs()[0].name
        self.run_dtype = np.dtype(section["input_dtype"])
        self.input_dtype = section.get("validate_dtype")  # what the original validates requests as
        self.label_output: str = section["outputs"]["label"]
        self.proba_output: str | None = section["outputs"].get("proba")
        self.missing = bool(section.get("missing_allowed", True))
        output = section["output"]
        self.output_dtype = np.dtype(output["dtype"])
        self.squeeze = bool(output.get("squeeze", False))
        classes = section.get("classes")
        self.labels = restore_labels(classes, output["dtype"]) if classes is not None else None
        self.classes = self.labels.tolist() if self.labels is not None else None

    @property
    def has_proba(self) -> bool:
        return self.proba_output is not None

    def _run(self, name: str, inputs: Any) -> np.ndarray:
        matrix = np.ascontiguousarray(inputs, dtype=self.run_dtype)
        if not self.missing and np.isnan(matrix).any():
            raise PredictionError("the model does not accept missing values (the original raises on them)")
        (result,) = self.session.run([name], {self.input_name: matrix})
        return np.asarray(result)

    def predict(self, inputs: Any) -> np.ndarray:
        if self.labels is not None and self.proba_output is not None:
            return self.labels[np.argmax(self.predict_proba(inputs), axis=1)]
        result = self._run(self.label_output, inputs)
        if self.labels is not None:  # a classifier without probabilities: the twin's labels, as the original's
            return np.asarray(result.tolist(), dtype=self.labels.dtype).reshape(-1)
        if self.squeeze and result.ndim == 2 and result.shape[1] == 1:
            result = result[:, 0]
        return result.astype(self.output_dtype, copy=False)

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.proba_output is None:
            return super().predict_proba(inputs)
        # float32 sums can pass 1 by an ulp (1.0000001): clipped, which only brings them closer to the original
        return np.clip(self._run(self.proba_output, inputs).astype(np.float64, copy=False), 0.0, 1.0)


def restore_labels(classes: list[Any], dtype: str) -> np.ndarray:
    """The original's class labels in the dtype its ``predict`` answered with (object for strings)."""
    kind = np.dtype(dtype).kind if dtype != "object" else "O"
    if kind not in LABEL_KINDS:
        raise BundleError(f"malformed manifest: compiled.output.dtype {dtype!r} is not a label dtype")
    if kind == "O":
        array = np.empty(len(classes), dtype=object)
        array[:] = classes
        return array
    return np.asarray(classes, dtype=np.dtype(dtype))


def new_session(source: bytes | Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1  # a server answers many small requests at once (see flavors/boosting.py)
    options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(source) if isinstance(source, Path) else source, options,
                                            providers=PROVIDERS)
    except Exception as exc:  # onnxruntime's own Fail / InvalidGraph / InvalidArgument kinds
        raise FlavorError(f"onnxruntime cannot load the compiled twin: {exc}") from exc


def load_twin(directory: Path, manifest: Manifest) -> TwinPredictor:
    """The twin of a bundle that was verified (every listed file's sha256 checked): only a listed file loads."""
    if TWIN_FILE not in {entry.path for entry in manifest.files}:
        raise BundleError(f"the manifest claims a compiled twin but does not list {TWIN_FILE}, so it was not "
                          "verified; refusing to load it")
    section = manifest.compiled or {}
    try:
        return TwinPredictor(new_session(directory / TWIN_FILE), section)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed manifest: compiled: {exc}") from None
