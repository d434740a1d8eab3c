"""Raw tensor contents: the Open Inference Protocol's binary layout and its HTTP binary tensor data extension.

One layout serves both transports: gRPC's ``raw_input_contents`` / ``raw_output_contents`` and the HTTP
extension. Values are little-endian in row-major order; ``BOOL`` is one byte per value; each ``BYTES`` element is
its length as a 4-byte little-endian unsigned integer followed by its bytes.

Over HTTP (the ``binary_tensor_data`` extension, which ``tritonclient.http`` uses by default) the body is the
JSON inference header followed by the binary contents, and ``Inference-Header-Content-Length`` gives the
length of the JSON part. An input whose ``parameters`` hold ``binary_data_size`` takes that many bytes of the
binary part, in input order. Outputs are sent binary when their ``parameters.binary_data`` is true, or, for
outputs that do not say, when the request's ``parameters.binary_data_output`` is true; each then carries
``binary_data_size`` and the response gets the same header. Every malformed length is a 400 naming the tensor.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from berth.errors import RequestError

EXTENSION = "binary_tensor_data"
HEADER = "inference-header-content-length"
RAW_DTYPES = {
    "BOOL": np.dtype(np.bool_), "INT8": np.dtype("<i1"), "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"), "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"), "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")


def _error(message: str, loc: list[Any]) -> RequestError:
    return RequestError(message, [{"loc": loc, "msg": message}])


# ---------------------------------------------------------------------------------------------- raw layout


def raw_to_array(raw: bytes, name: str, datatype: str, shape: list[int], loc: list[Any]) -> np.ndarray:
    """The tensor in ``raw``; its length must be exactly what ``shape`` and ``datatype`` need."""
    count = math.prod(shape)
    if datatype == "BYTES":
        items = deserialize_bytes(raw, name, loc)
        if len(items) != count:
            raise _error(f"input '{name}': shape {shape} needs {count} BYTES elements, the raw contents hold "
                         f"{len(items)}", loc)
        array = np.empty(count, dtype=object)
        array[:] = [bytes_to_text(item) for item in items]
        return array.reshape(shape)
    dtype = RAW_DTYPES.get(datatype)
    if dtype is None:
        raise _error(f"input '{name}': unknown datatype {datatype!r}", [*loc[:-1], "datatype"])
    needed = count * dtype.itemsize
    if len(raw) != needed:
        raise _error(f"input '{name}': shape {shape} of {datatype} needs {needed} bytes, the raw contents hold "
                     f"{len(raw)}", loc)
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def bytes_to_text(item: bytes) -> Any:
    """BYTES elements are text for berth's models (string columns); bytes that are not UTF-8 stay bytes."""
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        return item


def deserialize_bytes(raw: bytes, name: str, loc: list[Any]) -> list[bytes]:
    items: list[bytes] = []
    offset, end = 0, len(raw)
    while offset < end:
        if end - offset < _LENGTH.size:
            raise _error(f"input '{name}': BYTES element {len(items)} has a truncated 4-byte length prefix", loc)
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if length > end - offset:
            raise _error(f"input '{name}': BYTES element {len(items)} says {length} bytes, only {end - offset} "
                         "are left", loc)
        items.append(raw[offset:offset + length])
        offset += length
    return items


def array_to_raw(array: np.ndarray, datatype: str) -> bytes:
    """``array`` in the raw layout of ``datatype``."""
    if datatype == "BYTES":
        parts = []
        for value in array.reshape(-1).tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=RAW_DTYPES[datatype]).tobytes()


# ---------------------------------------------------------------------------------------------- HTTP extension


def split_body(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON inference header and the binary part of a body sent with ``Inference-Header-Content-Length``."""
    value = header_length.strip()
    loc = ["header", HEADER]
    if not value.isascii() or not value.isdigit():
        raise _error(f"Inference-Header-Content-Length must be a non-negative integer, got {value!r}", loc)
    length = int(value)
    if length == 0:
        raise _error("Inference-Header-Content-Length is 0: the JSON inference header is required", loc)
    if length > len(body):
        raise _error(f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes", loc)
    return body[:length], body[length:]


def binary_inputs(inputs: Any, tail: bytes) -> list[bytes | None]:
    """The raw contents of each input (None for an input sent as JSON ``data``), cut from ``tail`` in order."""
    if not isinstance(inputs, list):
        return []
    raws: list[bytes | None] = []
    offset = 0
    for index, tensor in enumerate(inputs):
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            raws.append(None)
            continue
        name = tensor.get("name")
        loc = ["inputs", index, "parameters", "binary_data_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise _error(f"input {name!r}: binary_data_size must be a non-negative integer, got {size!r}", loc)
        if offset + size > len(tail):
            raise _error(f"input {name!r}: binary_data_size is {size} but only {len(tail) - offset} bytes of binary "
                         "data are left (truncated body?)", loc)
        raws.append(tail[offset:offset + size])
        offset += size
    if offset != len(tail):
        raise _error(f"{len(tail) - offset} bytes of binary data follow the inputs' binary_data_size total "
                     f"({offset} bytes)", ["body"])
    return raws


def wants_binary(body: dict[str, Any]) -> dict[str, bool]:
    """For each requested output name, whether it goes back binary; ``""`` holds the request's default."""
    parameters = body.get("parameters")
    default = parameters.get("binary_data_output", False) if isinstance(parameters, dict) else False
    if not isinstance(default, bool):
        raise _error("parameters.binary_data_output must be true or false",
                     ["parameters", "binary_data_output"])
    chosen = {"": default}
    outputs = body.get("outputs")
    for index, output in enumerate(outputs if isinstance(outputs, list) else []):
        own = output.get("parameters") if isinstance(output, dict) else None
        flag = own.get("binary_data") if isinstance(own, dict) else None
        if flag is not None and not isinstance(flag, bool):
            raise _error("binary_data must be true or false", ["outputs", index, "parameters", "binary_data"])
        if isinstance(output, dict) and isinstance(output.get("name"), str):
            chosen[output["name"]] = default if flag is None else flag
    return chosen


def encode_response(header: dict[str, Any], raws: list[bytes]) -> tuple[bytes, int]:
    """The body of a response with binary outputs, and the length of its JSON part (for the header)."""
    from berth.serving.codec import dumps

    head = dumps(header)
    return head + b"".join(raws), len(head)
