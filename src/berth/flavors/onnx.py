"""ONNX models run with onnxruntime; scikit-learn estimators converted to ONNX with skl2onnx when asked.

``berth.save(proto, path)`` writes an ``onnx.ModelProto`` as it is.
``berth.save(estimator, path, format="onnx", sample=X)`` converts a scikit-learn estimator or pipeline with
skl2onnx: one float32 input of shape ``[None, n_features]``; classifiers without ZipMap, so probabilities come
out as a tensor. The converted model is checked against the original on the sample before anything is
written (labels equal, probabilities within 1e-4, regression values within float32 rounding); a mismatch
raises :class:`~berth.errors.FlavorError`. The bundle's libraries are only what loading needs (onnx,
onnxruntime, numpy); the converter is recorded in the flavor options as ``converted_from`` (the skl2onnx and
scikit-learn versions, and the estimator's class), for provenance, not checked on load.

Options (keywords of ``berth.save``): ``target_opset=`` for the conversion; for a plain ModelProto,
``output=`` (the output ``predict`` returns, by default the first), ``proba_output=`` (an output holding class
probabilities) and ``classes=[...]``. An ONNX file holds a graph, no code: loading needs no trust.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth import environment
from berth.errors import FlavorError
from berth.flavors.base import Flavor, Predictor, SavedPayload, class_path, module_roots
from berth.signature import json_ready

if TYPE_CHECKING:
    from berth.manifest import Manifest

PAYLOAD = "model.onnx"
PROVIDERS = ["CPUExecutionProvider"]
PROBA_ATOL = 1e-4
REGRESSION_RTOL = 1e-4  # float32 keeps about 7 significant digits; sums of many terms lose a few
PLAIN_OPTIONS = frozenset({"output", "proba_output", "classes"})
CONVERT_OPTIONS = frozenset({"target_opset"})
CONVERTER_LIBRARIES = ("skl2onnx", "scikit-learn")  # recorded as provenance, not needed to load
ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint64)": "uint64", "tensor(uint32)": "uint32", "tensor(uint16)": "uint16",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(string)": "string",
}


class OnnxPredictor(Predictor):
    """An onnxruntime session: ``predict`` reads one output, ``predict_proba`` another (when there is one)."""

    input_target = "ndarray"
    bounded_time = True  # a graph of standard operators, run by onnxruntime

    def __init__(self, session: Any, *, output: str | None = None, proba_output: str | None = None,
                 classes: list[Any] | None = None, squeeze: bool = False) -> None:
        self.session = session
        source = session.get_inputs()[0]
        self.input_name: str = source.name
        dtype = ORT_DTYPES.get(source.type)
        self.input_dtype = None if dtype == "string" else dtype
        self.output: str = output or session.get_outputs()[0].name
        self.proba_output = proba_output
        self.classes = classes
        self.squeeze = squeeze  # skl2onnx regressors answer [N, 1] where scikit-learn answers [N]

    @property
    def has_proba(self) -> bool:
        return self.proba_output is not None

    def run(self, name: str, inputs: Any) -> np.ndarray:
        (result,) = self.session.run([name], {self.input_name: inputs})
        return np.asarray(result)

    def predict(self, inputs: Any) -> np.ndarray:
        result = self.run(self.output, inputs)
        if self.squeeze and result.ndim == 2 and result.shape[1] == 1:
            return result[:, 0]
        return result

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.proba_output is None:
            return super().predict_proba(inputs)
        return self.run(self.proba_output, inputs)


def is_sklearn(model: Any) -> bool:
    return "sklearn.base.BaseEstimator" in class_path(model)


def new_session(model: bytes | Path) -> Any:
    import onnxruntime

    source = str(model) if isinstance(model, Path) else model
    try:
        return onnxruntime.InferenceSession(source, providers=PROVIDERS)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / InvalidArgument kinds
        raise FlavorError(f"onnxruntime cannot load this model: {exc}") from exc


class OnnxFlavor(Flavor):
    name = "onnx"
    formats = ("onnx",)

    def handles(self, model: Any) -> bool:
        return "onnx" in module_roots(model) and type(model).__name__ == "ModelProto"

    def accepts(self, model: Any, format: str) -> bool:
        return self.handles(model) or (format == "onnx" and is_sklearn(model))

    def save(self, model: Any, directory: Path, *, format: str, sample: Any,
             options: dict[str, Any]) -> SavedPayload:
        libraries = ["onnx", "onnxruntime", "numpy"]  # what loading needs; a converter is provenance
        converted_from: dict[str, str] | None = None
        if is_sklearn(model):
            check_options(options, CONVERT_OPTIONS)
            data, saved, session = convert(model, sample, options.get("target_opset"))
            converted_from = {**environment.capture(list(CONVERTER_LIBRARIES)),
                              "estimator": class_path(model)[0]}
        elif self.handles(model):
            check_options(options, PLAIN_OPTIONS)
            try:
                data = model.SerializeToString()
            except ValueError as exc:  # protobuf refuses messages over 2 GB
                raise FlavorError(f"cannot serialize this ONNX model: {exc}") from exc
            session = new_session(data)
            saved = plain_options(session, options)
        else:
            raise FlavorError(f"the onnx flavor saves onnx.ModelProto or scikit-learn estimators, not "
                              f"{type(model).__qualname__}")
        (directory / PAYLOAD).write_bytes(data)
        predictor = OnnxPredictor(session, **saved)
        if converted_from is not None:
            saved = {**saved, "converted_from": converted_from}
        if sample is None:
            spec = input_spec(session)
            if spec is not None:
                saved = {**saved, "input_spec": spec}
        return SavedPayload([PAYLOAD], libraries, predictor, saved)

    def load(self, directory: Path, manifest: Manifest, *, trust: bool,
             trusted_types: list[str]) -> Predictor:
        options = manifest.flavor_options
        return OnnxPredictor(new_session(self.payload(directory, manifest, PAYLOAD)), output=options.get("output"),
                             proba_output=options.get("proba_output"), classes=options.get("classes"),
                             squeeze=bool(options.get("squeeze", False)))


def check_options(options: dict[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        accepted = ", ".join(sorted(known))
        raise FlavorError(f"unknown option(s) for this ONNX model: {', '.join(unknown)} "
                          f"(accepted: {accepted})")


def plain_options(session: Any, options: dict[str, Any]) -> dict[str, Any]:
    names = [o.name for o in session.get_outputs()]
    saved: dict[str, Any] = {}
    for key in ("output", "proba_output"):
        value = options.get(key)
        if value is not None and value not in names:
            raise FlavorError(f"{key}={value!r} is not an output of this model; "
                              f"its outputs: {', '.join(names)}")
        saved[key] = value
    classes = options.get("classes")
    saved["classes"] = json_ready(list(classes)) if classes is not None else None
    return saved


def input_spec(session: Any) -> dict[str, Any] | None:
    """The input signature read from the graph: a table for [batch, fixed width], else a tensor."""
    source = session.get_inputs()[0]
    dtype = ORT_DTYPES.get(source.type)
    if dtype is None:
        return None
    shape = [d if isinstance(d, int) and d > 0 else -1 for d in source.shape]
    if len(shape) == 2 and shape[1] > 0:
        return {"layout": "table", "columns": [{"name": f"x{i}", "dtype": dtype} for i in range(shape[1])]}
    if not shape or dtype == "string":  # a string tensor has no numpy dtype to coerce requests to
        return None
    return {"layout": "tensor", "tensor": {"dtype": dtype, "shape": [-1, *shape[1:]]}}


# --------------------------------------------------------------------------- scikit-learn conversion


def convert(model: Any, sample: Any, target_opset: int | None) -> tuple[bytes, dict[str, Any], Any]:
    """Convert with skl2onnx and compare both models on the sample; the caller writes the bytes only then."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.base import is_classifier

    features = numeric_sample(model, sample)
    classifier = is_classifier(model)
    conversion_options = {id(model): {"zipmap": False}} if classifier else None
    try:
        proto = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, features.shape[1]]))],
                                options=conversion_options, target_opset=target_opset)
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError, MissingShapeCalculator...
        raise FlavorError(f"skl2onnx cannot convert {type(model).__qualname__}: {exc}") from exc
    data = proto.SerializeToString()
    session = new_session(data)
    outputs = [o.name for o in session.get_outputs()]
    reference = reference_frame(model, features)
    expected = np.asarray(model.predict(reference))
    saved: dict[str, Any] = {"output": outputs[0], "proba_output": None, "classes": None,
                             "squeeze": expected.ndim == 1}
    predictor = OnnxPredictor(session, **saved)
    got = predictor.predict(features)
    if classifier:
        saved["classes"] = json_ready(list(model.classes_))
        expected_proba = got_proba = None
        if hasattr(model, "predict_proba") and len(outputs) > 1:
            saved["proba_output"] = outputs[1]
            expected_proba = np.asarray(model.predict_proba(reference))
            got_proba = predictor.run(outputs[1], features)
        check_classifier(expected, got, expected_proba, got_proba, model.classes_)
    else:
        check_regressor(expected, got)
    return data, saved, session


def numeric_sample(model: Any, sample: Any) -> np.ndarray:
    """The sample as the float32 matrix the ONNX model takes, in the column order the estimator was fit on."""
    if sample is None:
        raise FlavorError("converting a scikit-learn model to ONNX needs sample= (a few rows of training "
                          "data): it gives the input width, and the converted model is checked on it")
    from berth.signature_inference import sample_to_frame  # the save side: pandas, not needed to load

    frame = sample_to_frame(sample)
    text = [str(c) for c in frame.columns if getattr(frame[c].dtype, "kind", "O") not in "biuf"]
    if text:
        raise FlavorError(f"ONNX conversion takes one float tensor, but the sample has non-numeric columns: "
                          f"{', '.join(text)}; save with the sklearn flavor (skops) instead")
    names = getattr(model, "feature_names_in_", None)
    given = [str(c) for c in frame.columns]
    if names is not None and given != [f"x{i}" for i in range(len(given))] and given != list(map(str, names)):
        raise FlavorError("the sample's columns must be the training columns in the training order: "
                          f"{', '.join(map(str, names))}; got {', '.join(given)}")
    width = getattr(model, "n_features_in_", frame.shape[1])
    if frame.shape[1] != width:
        raise FlavorError(f"the model was fit on {width} features, the sample has {frame.shape[1]}")
    features = frame.to_numpy(dtype=np.float32)
    if not np.isfinite(features).all():
        raise FlavorError("the sample for the ONNX conversion check must not hold missing or infinite values")
    return features


def reference_frame(model: Any, features: np.ndarray) -> Any:
    """The float32-rounded sample as the estimator expects it: what both models see is then the same."""
    values = features.astype(np.float64)
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return values
    import pandas as pd

    return pd.DataFrame(values, columns=list(names))


def check_classifier(expected: np.ndarray, got: np.ndarray, expected_proba: np.ndarray | None,
                     got_proba: np.ndarray | None, classes: Any) -> None:
    """Labels must be equal, except on rows where the original's top probabilities tie (within tolerance)."""
    if got.shape != expected.shape:
        raise FlavorError(f"ONNX conversion check failed: labels of shape {got.shape}, "
                          f"expected {expected.shape}")
    differ = np.flatnonzero(got != expected)
    if expected_proba is not None and got_proba is not None:
        if got_proba.shape != expected_proba.shape:
            raise FlavorError(f"ONNX conversion check failed: probabilities of shape {got_proba.shape}, "
                              f"expected {expected_proba.shape}")
        if not np.allclose(got_proba, expected_proba, rtol=0, atol=PROBA_ATOL):
            worst = float(np.max(np.abs(got_proba - expected_proba)))
            raise FlavorError(f"ONNX conversion check failed: probabilities differ from the original model's "
                              f"by up to {worst:.3g} on the sample (tolerance {PROBA_ATOL})")
        index = {label: i for i, label in enumerate(list(classes))}
        differ = np.array([row for row in differ if got[row] not in index or expected_proba[row].max()
                           - expected_proba[row, index[got[row]]] > PROBA_ATOL], dtype=int)
    if differ.size:
        rows = ", ".join(str(r) for r in differ[:5])
        raise FlavorError(f"ONNX conversion check failed: the converted model predicts other labels than the "
                          f"original on {differ.size} of {len(expected)} sample rows (rows {rows})")


def check_regressor(expected: np.ndarray, got: np.ndarray) -> None:
    if got.shape != expected.shape:
        raise FlavorError(f"ONNX conversion check failed: output of shape {got.shape}, "
                          f"expected {expected.shape}")
    expected = expected.astype(np.float64)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1.0)
    if not np.allclose(got, expected, rtol=REGRESSION_RTOL, atol=REGRESSION_RTOL * scale):
        worst = float(np.max(np.abs(got - expected)))
        raise FlavorError(f"ONNX conversion check failed: predictions differ from the original model's by up "
                          f"to {worst:.3g} on the sample (relative tolerance {REGRESSION_RTOL})")
