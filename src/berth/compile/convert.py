"""Model to ONNX: scikit-learn through skl2onnx, LightGBM and XGBoost through onnxmltools when it is installed.

Classifiers are converted without ZipMap, so probabilities come out as one float tensor in the order of
``classes_``. The input is one tensor of the signature's columns in order. Where the original computes in
float64 (linear models, scalers) the twin takes float64 (``DoubleTensorType``) so both do the same arithmetic;
trees and tree ensembles cast their input to float32 themselves, and so does the twin. A model the converters do
not know raises :class:`Refusal` with the converter's reason; nothing is written here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from berth.flavors.base import class_path

MAX_TREE_NODES = 2_000_000  # skl2onnx converts trees in Python, ~0.5 s per 100k nodes: bound the save time


class Refusal(Exception):
    """Why a model gets no twin: one line for the manifest and the startup log."""


@dataclass(frozen=True)
class Converted:
    data: bytes
    input_dtype: str  # float32 or float64: what the twin's input tensor is
    label: str  # the output holding labels (classifiers) or values (regressors)
    proba: str | None  # the output holding class probabilities, if any
    versions: dict[str, str]


def convert(model: Any, flavor: str, width: int, float32_input: bool) -> Converted:
    """Convert ``model`` (of the named flavor) taking ``width`` numeric columns; raises :class:`Refusal`."""
    if flavor == "sklearn":
        if "sklearn.base.BaseEstimator" not in class_path(model):
            raise Refusal(f"{type(model).__qualname__} is not a scikit-learn estimator")
        require("skl2onnx", "skl2onnx is not installed (pip install 'berth[onnx]')")
        check_size(model)
        dtypes = ["float32"] if float32_input else ["float64", "float32"]
        return first_that_converts(model, width, dtypes, sklearn_to_onnx)
    if flavor in ("lightgbm", "xgboost"):
        require("onnxmltools", f"converting {flavor} models needs onnxmltools, which is not installed")
        kind = type(model).__qualname__
        if kind not in ("LGBMClassifier", "LGBMRegressor", "XGBClassifier", "XGBRegressor"):
            raise Refusal(f"{kind} has no converter berth uses (scikit-learn wrappers only)")
        # LightGBM compares float64 inputs with float64 thresholds, XGBoost casts inputs to float32 itself: each
        # twin takes its library's input type. onnxmltools writes the thresholds of either as float32 (ONNX-ML
        # tree operators before opset 3), so a LightGBM model with a threshold on a data value can answer
        # otherwise at that value: the proof refuses such a twin (diabetes regressor: 3.1 off at bmi's minimum).
        dtypes = ["float64", "float32"] if kind.startswith("LGBM") else ["float32"]
        return first_that_converts(model, width, dtypes, boosting_to_onnx)
    raise Refusal(f"the {flavor} flavor has no compiler")


def require(module: str, message: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise Refusal(message)


def check_size(model: Any) -> None:
    nodes = sum(int(getattr(getattr(part, "tree_", None), "node_count", 0)) for part in estimators_in(model))
    if nodes > MAX_TREE_NODES:
        raise Refusal(f"the model holds {nodes:,} tree nodes; compiling at save stops at {MAX_TREE_NODES:,} "
                      "(the conversion would take long)")


def estimators_in(model: Any) -> list[Any]:
    """The model and every fitted sub-estimator (pipeline steps, ensemble members), flattened."""
    found: list[Any] = []
    stack: list[Any] = [model]
    while stack and len(found) < 1_000_000:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
            continue
        if hasattr(item, "ndim") and getattr(item, "dtype", None) is not None and item.dtype == object:
            stack.extend(item.ravel().tolist())  # GradientBoosting keeps its trees in an object array
            continue
        if not hasattr(item, "fit"):
            continue
        found.append(item)
        for key in ("steps", "estimators_", "estimator_"):
            value = getattr(item, key, None)
            if value is not None:
                stack.append([v[1] if isinstance(v, tuple) else v for v in value] if key == "steps" else value)
    return found


def first_that_converts(model: Any, width: int, dtypes: list[str], converter: Any) -> Converted:
    errors = []
    for dtype in dtypes:
        try:
            converted: Converted = converter(model, width, dtype)
            from berth.compile.twin import new_session

            new_session(converted.data)  # onnxruntime must accept the graph (double kernels are not all there)
            return converted
        except Refusal as exc:
            errors.append(str(exc))
        except Exception as exc:  # converters raise RuntimeError, NotImplementedError, MissingShapeCalculator...
            errors.append(f"{type(exc).__name__}: {exc}")
    raise Refusal(f"conversion failed: {short(errors[-1])}")


def short(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def sklearn_to_onnx(model: Any, width: int, dtype: str) -> Converted:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from sklearn.base import is_classifier

    tensor = DoubleTensorType if dtype == "float64" else FloatTensorType
    options = {"zipmap": False} if is_classifier(model) else None
    proto = convert_sklearn(model, initial_types=[("input", tensor([None, width]))], options=options)
    return described(proto, dtype, ["skl2onnx", "scikit-learn"])


def boosting_to_onnx(model: Any, width: int, dtype: str) -> Converted:
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import DoubleTensorType, FloatTensorType

    lightgbm = type(model).__module__.startswith("lightgbm")
    extra = {"zipmap": False} if lightgbm and hasattr(model, "classes_") else {}
    convert_one = convert_lightgbm if lightgbm else convert_xgboost
    if not lightgbm and getattr(model.get_booster(), "feature_names", None):
        # onnxmltools reads XGBoost's tree dump, which names features f0, f1... only when the booster has no
        # names; the twin takes columns by position anyway (the signature puts them in order). On a copy: the
        # original keeps its names.
        import copy

        model = copy.deepcopy(model)
        model.get_booster().feature_names = None
    tensor = DoubleTensorType if dtype == "float64" else FloatTensorType
    proto = convert_one(model, initial_types=[("input", tensor([None, width]))], **extra)
    library = "lightgbm" if lightgbm else "xgboost"
    return described(proto, dtype, ["onnxmltools", library])


def described(proto: Any, dtype: str, libraries: list[str]) -> Converted:
    from berth import environment

    outputs = [o.name for o in proto.graph.output]
    if not outputs or len(outputs) > 2:
        raise Refusal(f"the converted graph has {len(outputs)} outputs; berth expects a label and probabilities")
    data = proto.SerializeToString()
    versions = environment.capture(["onnx", *libraries])
    return Converted(data, dtype, outputs[0], outputs[1] if len(outputs) == 2 else None, versions)
