"""The Open Inference Protocol (KServe v2), REST: tensors in, tensors out, errors as ``{"error": "..."}``.

Inputs map onto the model's signature in one of two ways: a single tensor of shape ``[rows, columns]`` (or
``[rows]`` for a one-column model, or the model's tensor shape), or one tensor per column, named after the
column, of shape ``[rows]`` or ``[rows, 1]``. Outputs are ``predict`` (labels or values) and, when asked for
in ``outputs``, ``predict_proba``; MLServer's scikit-learn runtime uses the same names.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import numpy as np

from berth.errors import RequestError, SignatureError
from berth.serving.codec import require_object
from berth.serving.slot import Prediction
from berth.signature import Signature

DATATYPES = {
    "BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
NUMPY_TO_V2 = {v: k for k, v in DATATYPES.items() if k != "BYTES"}
OUTPUTS = ("predict", "predict_proba")


def datatype_of(dtype: str) -> str:
    return NUMPY_TO_V2.get(dtype, "BYTES")


def _tensor(index: int, tensor: Any) -> tuple[str, np.ndarray]:
    where = ["inputs", index]
    if not isinstance(tensor, dict):
        raise RequestError(f"input {index} must be an object", [{"loc": where, "msg": "expected an object"}])
    # JSON values, checked one by one below
    name: Any = tensor.get("name")
    shape: Any = tensor.get("shape")
    datatype: Any = tensor.get("datatype")
    data: Any = tensor.get("data")
    problems: list[dict[str, Any]] = []
    if not isinstance(name, str):
        problems.append({"loc": [*where, "name"], "msg": "expected a string"})
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        problems.append({"loc": [*where, "shape"], "msg": "expected a list of non-negative integers"})
    if datatype not in DATATYPES:
        problems.append({"loc": [*where, "datatype"], "msg": f"expected one of {', '.join(DATATYPES)}"})
    if not isinstance(data, list):
        problems.append({"loc": [*where, "data"], "msg": "expected a list"})
    if problems:
        raise RequestError(f"input {index}: " + "; ".join(f"{p['loc'][-1]}: {p['msg']}" for p in problems), problems)
    array: np.ndarray
    try:
        array = np.array(data, dtype=DATATYPES[datatype]).reshape(-1) if datatype != "BYTES" else np.array(
            _flatten(data), dtype=object)
    except (ValueError, TypeError, OverflowError) as exc:
        raise SignatureError(f"input '{name}': data is not {datatype}: {exc}",
                             [{"loc": [*where, "data"], "msg": f"not {datatype}"}]) from exc
    expected = math.prod(shape)
    if array.size != expected:
        raise SignatureError(f"input '{name}': shape {shape} needs {expected} values, data has {array.size}",
                             [{"loc": [*where, "data"], "msg": f"expected {expected} values, got {array.size}"}])
    return name, array.reshape(shape)


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    return flat


def decode(body: Any, signature: Signature) -> tuple[Any, list[str], str]:
    """Model input, the requested output names, and the request id."""
    body = require_object(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors",
                           [{"loc": ["inputs"], "msg": "expected a non-empty list"}])
    tensors = [_tensor(i, t) for i, t in enumerate(inputs)]
    requested = _requested_outputs(body.get("outputs"))
    request_id = body.get("id")
    return _to_model_input(tensors, signature), requested, str(request_id) if request_id else uuid.uuid4().hex


def _requested_outputs(outputs: Any) -> list[str]:
    if outputs is None:
        return ["predict"]
    if not isinstance(outputs, list):
        raise RequestError("'outputs' must be a list", [{"loc": ["outputs"], "msg": "expected a list"}])
    names = [o.get("name") if isinstance(o, dict) else None for o in outputs]
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown:
        raise RequestError(f"unknown output {unknown[0]!r}; this model has {', '.join(OUTPUTS)}",
                           [{"loc": ["outputs"], "msg": f"unknown output {n!r}"} for n in unknown])
    return [str(n) for n in names] or ["predict"]


def _to_model_input(tensors: list[tuple[str, np.ndarray]], signature: Signature) -> Any:
    names = signature.names
    if len(tensors) == 1 and tensors[0][0] not in names[1:]:
        name, array = tensors[0]
        if signature.layout in ("tensor", "column"):
            return array.reshape(-1) if signature.layout == "column" else array
        if array.ndim == 1 and len(names) == 1:
            return {names[0]: array}
        return array if array.ndim == 2 else array.reshape(len(array), -1) if array.ndim > 2 else array
    columns: dict[str, Any] = {}
    for name, array in tensors:
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim != 1:
            raise SignatureError(f"input '{name}': one tensor per column must have shape [rows] or [rows, 1]",
                                 [{"loc": ["inputs", name, "shape"], "msg": "expected [rows] or [rows, 1]"}])
        columns[name] = array
    return columns


def encode(prediction: Prediction, requested: list[str], model: str, version: str,
           request_id: str) -> dict[str, Any]:
    outputs = []
    for name in requested:
        array = prediction.predictions if name == "predict" else prediction.probabilities
        if array is None:
            raise RequestError("this model gives no class probabilities",
                               [{"loc": ["outputs"], "msg": "predict_proba is not available"}])
        datatype = datatype_of(array.dtype.name) if array.dtype.kind != "U" else "BYTES"
        outputs.append({"name": name, "shape": list(array.shape), "datatype": datatype,
                        "data": array.reshape(-1).tolist()})
    return {"model_name": model, "model_version": version, "id": request_id, "parameters": {},
            "outputs": outputs}


def metadata(signature: Signature, model: str, version: str, flavor: str) -> dict[str, Any]:
    if signature.layout == "tensor" and signature.tensor:
        inputs = [{"name": "input-0", "datatype": datatype_of(signature.tensor.dtype),
                   "shape": list(signature.tensor.shape)}]
    elif signature.all_numeric and len(signature.columns) > 1:
        dtype = np.result_type(*[c.dtype for c in signature.columns]).name
        inputs = [{"name": "input-0", "datatype": datatype_of(dtype), "shape": [-1, len(signature.columns)]}]
    else:
        inputs = [{"name": c.name, "datatype": datatype_of(c.dtype), "shape": [-1]} for c in signature.columns]
    out = signature.outputs
    outputs = [{"name": "predict", "datatype": datatype_of(out.dtype), "shape": list(out.shape)}]
    if out.probabilities and out.classes:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(out.classes)]})
    return {"name": model, "versions": [version], "platform": f"berth-{flavor}", "inputs": inputs,
            "outputs": outputs}
