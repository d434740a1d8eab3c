"""The Open Inference Protocol (KServe v2), REST: tensors in, tensors out, errors as ``{"error": "..."}``.

Inputs map onto the model's signature in one of two ways: a single tensor of shape ``[rows, columns]`` (or
``[rows]`` for a one-column model, or the model's tensor shape), or one tensor per column, named after the
column, of shape ``[rows]`` or ``[rows, 1]``. Outputs are ``predict`` (labels or values) and, when asked for
in ``outputs``, ``predict_proba``; MLServer's scikit-learn runtime uses the same names.

Tensors may also travel raw (the binary tensor data extension, :mod:`berth.serving.protocols.binary`); gRPC
(:mod:`berth.serving.grpc`) decodes its messages into the same :class:`InferCall` and encodes the same outputs.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.responses import Response

from berth.errors import RequestError, SignatureError
from berth.serving.codec import decode_json, require_object
from berth.serving.protocols import binary
from berth.serving.responses import json_response
from berth.serving.slot import Prediction
from berth.signature import Signature

DATATYPES = {
    "BOOL": "bool", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
NUMPY_TO_V2 = {v: k for k, v in DATATYPES.items() if k != "BYTES"}
OUTPUTS = ("predict", "predict_proba")
MAX_RANK = 32  # numpy's own limit is 64; no model input has more than a handful
EXTENSIONS = [binary.EXTENSION]  # listed in server metadata (GET /v2, gRPC ServerMetadata)


def datatype_of(dtype: str) -> str:
    return NUMPY_TO_V2.get(dtype, "BYTES")


def _tensor(index: int, tensor: Any, raw: bytes | None = None) -> tuple[str, np.ndarray]:
    """One input tensor: from its JSON ``data``, or from ``raw`` contents (binary extension, gRPC)."""
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
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        problems.append({"loc": [*where, "shape"], "msg": "expected a list of non-negative integers"})
    elif len(shape) > MAX_RANK:
        problems.append({"loc": [*where, "shape"], "msg": f"at most {MAX_RANK} dimensions, got {len(shape)}"})
    if datatype not in DATATYPES:
        problems.append({"loc": [*where, "datatype"], "msg": f"expected one of {', '.join(DATATYPES)}"})
    if raw is None and not isinstance(data, list):
        problems.append({"loc": [*where, "data"], "msg": "expected a list"})
    if problems:
        raise RequestError(f"input {index}: " + "; ".join(f"{p['loc'][-1]}: {p['msg']}" for p in problems), problems)
    if raw is not None:
        if data is not None:
            raise RequestError(f"input '{name}': give either data or binary_data_size, not both",
                               [{"loc": [*where, "data"], "msg": "data and binary_data_size both given"}])
        return name, binary.raw_to_array(raw, name, datatype, shape, [*where, "parameters", "binary_data_size"])
    return name, values_to_array(data, name, datatype, shape, where)


def values_to_array(data: list[Any], name: str, datatype: str, shape: list[int], where: list[Any]) -> np.ndarray:
    """A tensor from nested or flat values; their count must match ``shape``."""
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
    return array.reshape(shape)


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


@dataclass
class InferCall:
    """A decoded inference request: the model input, the outputs asked for, and how to send them back."""

    data: Any
    requested: list[str]
    request_id: str
    binary: dict[str, bool] = field(default_factory=dict)  # output name -> raw contents ("" = default)

    @property
    def probabilities(self) -> bool:
        return "predict_proba" in self.requested

    def is_binary(self, output: str) -> bool:
        return self.binary.get(output, self.binary.get("", False))


def decode(body: Any, signature: Signature, raws: list[bytes | None] | None = None) -> InferCall:
    """Model input, the requested output names, and the request id; ``raws`` are binary input contents."""
    body = require_object(body)
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors",
                           [{"loc": ["inputs"], "msg": "expected a non-empty list"}])
    raws = raws or []
    tensors = [_tensor(i, t, raws[i] if i < len(raws) else None) for i, t in enumerate(inputs)]
    requested = requested_outputs(body.get("outputs"))
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError("'id' must be a string", [{"loc": ["id"], "msg": "expected a string"}])
    return InferCall(model_input(tensors, signature), requested,
                     str(request_id) if request_id else uuid.uuid4().hex, binary.wants_binary(body))


def read(body: bytes, content_type: str | None, header_length: str | None, signature: Signature) -> InferCall:
    """An HTTP inference request: JSON, or JSON followed by binary contents (``Inference-Header-Content-Length``)."""
    if header_length is None:
        return decode(decode_json(body, content_type), signature)
    head, tail = binary.split_body(body, header_length)
    payload = decode_json(head, None)
    return decode(payload, signature, binary.binary_inputs(require_object(payload).get("inputs"), tail))


def requested_outputs(outputs: Any) -> list[str]:
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


def model_input(tensors: list[tuple[str, np.ndarray]], signature: Signature) -> Any:
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


def output_tensors(prediction: Prediction, requested: list[str]) -> list[tuple[str, str, np.ndarray]]:
    """(name, datatype, array) of each requested output."""
    tensors = []
    for name in requested:
        array = prediction.predictions if name == "predict" else prediction.probabilities
        if array is None:
            raise RequestError("this model gives no class probabilities",
                               [{"loc": ["outputs"], "msg": "predict_proba is not available"}])
        datatype = datatype_of(array.dtype.name) if array.dtype.kind not in "USO" else "BYTES"
        tensors.append((name, datatype, array))
    return tensors


def encode(prediction: Prediction, call: InferCall, model: str, version: str) -> tuple[dict[str, Any], list[bytes]]:
    """The response's JSON part, and the raw contents of the outputs sent binary (in output order)."""
    outputs, raws = [], []
    for name, datatype, array in output_tensors(prediction, call.requested):
        tensor: dict[str, Any] = {"name": name, "shape": list(array.shape), "datatype": datatype}
        if call.is_binary(name):
            raw = binary.array_to_raw(array, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            raws.append(raw)
        else:
            tensor["data"] = array.reshape(-1).tolist()
        outputs.append(tensor)
    header = {"model_name": model, "model_version": version, "id": call.request_id, "parameters": {},
              "outputs": outputs}
    return header, raws


def respond(prediction: Prediction, call: InferCall, model: str, version: str) -> Response:
    """JSON, or (when an output is binary) the JSON header followed by the raw contents."""
    header, raws = encode(prediction, call, model, version)
    if not raws:
        return json_response(header)
    body, length = binary.encode_response(header, raws)
    return Response(body, media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(length)})


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
