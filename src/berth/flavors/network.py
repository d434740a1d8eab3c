"""The predictor and option handling shared by the neural-network flavors (Keras and PyTorch).

A network's raw output is read as class labels and probabilities when ``classes=[...]`` are given
(``output="logits"`` or ``"probabilities"`` says how); the input dtype is chosen from ``input_dtype=``, the
model's declaration or the sample; the saved model is checked against the original on the sample. No framework
is imported here: callers pass the model's run function in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from berth.errors import FlavorError, PredictionError
from berth.flavors.base import Predictor
from berth.signature import json_ready
from berth.signature_inference import is_one_dimensional, sample_to_frame

OUTPUT_MODES = ("logits", "probabilities")
COMMON_OPTIONS = frozenset({"classes", "output", "input_dtype"})
CHECK_RTOL, CHECK_ATOL = 1e-4, 1e-5


class NetworkPredictor(Predictor):
    """A network's raw output, read as class labels and probabilities when ``classes`` are given."""

    input_target = "ndarray"

    def __init__(self, *, classes: list[Any] | None, output: str, input_dtype: str) -> None:
        self.classes = classes
        self.output = output
        self.input_dtype = input_dtype

    def raw(self, inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def has_proba(self) -> bool:
        return self.classes is not None

    def predict(self, inputs: Any) -> np.ndarray:
        result = self.raw(inputs)
        if self.classes is None:
            return result
        return np.asarray(self.classes)[self.probabilities(result).argmax(axis=-1)]

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.classes is None:
            return super().predict_proba(inputs)
        return self.probabilities(self.raw(inputs))

    def probabilities(self, result: np.ndarray) -> np.ndarray:
        assert self.classes is not None
        logits = self.output == "logits"
        if result.ndim == 2 and result.shape[1] == 1 and len(self.classes) == 2:
            positive = 1.0 / (1.0 + np.exp(-result)) if logits else result
            return np.concatenate([1.0 - positive, positive], axis=1)
        if result.ndim == 0 or result.shape[-1] != len(self.classes):
            width = result.shape[-1] if result.ndim else 1
            raise PredictionError(f"the model gives {width} outputs per row but {len(self.classes)} classes "
                                  "were named when it was saved")
        if not logits:
            return result
        shifted = np.exp(result - result.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)


def classification_options(options: dict[str, Any], default_output: str) -> dict[str, Any]:
    """``classes`` and ``output`` checked and made JSON-ready, for the manifest."""
    classes = options.get("classes")
    output = options.get("output")
    if classes is None:
        if output is not None:
            raise FlavorError("output= says how to read a classifier's outputs: pass classes=[...] with it")
        return {"classes": None, "output": default_output}
    if isinstance(classes, str | bytes) or not hasattr(classes, "__len__") or len(classes) < 2:
        raise FlavorError("classes= must be a list of at least two class labels, in the order of the outputs")
    if output not in (None, *OUTPUT_MODES):
        raise FlavorError(f"output= must be 'logits' or 'probabilities', not {output!r}")
    return {"classes": json_ready(list(classes)), "output": output or default_output}


def sample_array(sample: Any) -> np.ndarray:
    """The sample as the array coercion will hand the model (rows in the sample's column order)."""
    if isinstance(sample, np.ndarray):
        return sample
    if hasattr(sample, "numpy") and hasattr(sample, "detach"):  # a torch tensor
        return np.asarray(sample.detach().cpu().numpy())
    if is_one_dimensional(sample):
        return np.asarray(list(sample))
    return sample_to_frame(sample).to_numpy()


def input_dtype_for(values: np.ndarray | None, options: dict[str, Any], run: Callable[[np.ndarray], Any],
                    declared: str | None = None) -> str:
    """``input_dtype=`` if given, else the model's declared dtype, else float32, unless the sample is integral
    and the model refuses it as float32 (an embedding of token ids): then the sample's integer dtype."""
    if options.get("input_dtype"):
        try:
            return str(np.dtype(options["input_dtype"]).name)
        except TypeError as exc:
            raise FlavorError(f"input_dtype={options['input_dtype']!r} is not a numpy dtype") from exc
    if declared:
        return declared
    if values is None or values.dtype.kind in "fb":
        return "float32"
    if values.dtype.kind not in "iu":
        raise FlavorError(f"a network takes numbers; the sample's values are {values.dtype} (pass "
                          "input_dtype= if the model really takes them)")
    try:
        run(values.astype("float32"))
    except Exception:  # whatever the framework raises for floats where it wants integers
        return values.dtype.name
    return "float32"


def check_options(flavor: str, options: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        raise FlavorError(f"unknown option(s) for the {flavor} flavor: {', '.join(unknown)} "
                          f"(accepted: {', '.join(sorted(known))})")


def check_same(expected: np.ndarray, got: np.ndarray, what: str) -> None:
    """The saved model must answer the sample as the original did."""
    if expected.shape != got.shape or not np.allclose(got, expected, rtol=CHECK_RTOL, atol=CHECK_ATOL):
        detail = (f"shape {got.shape} instead of {expected.shape}" if expected.shape != got.shape
                  else f"values differ by up to {float(np.max(np.abs(got - expected))):.3g}")
        raise FlavorError(f"the {what} does not reproduce the original model's outputs on the sample: "
                          f"{detail}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error that names the framework's reason."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
