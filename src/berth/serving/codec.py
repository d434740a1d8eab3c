"""Bytes in, bytes out: JSON decoding and encoding shared by every protocol (orjson, numpy-aware)."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from berth.errors import RequestError, SignatureError, UnsupportedMediaTypeError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def decode_json(body: bytes, content_type: str | None, *, allow_missing_type: bool = True) -> Any:
    kind = media_type(content_type)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaTypeError(f"expected Content-Type application/json, got {kind}",
                                        [{"loc": ["header", "content-type"], "msg": f"unsupported: {kind}"}])
    if not kind and not allow_missing_type:
        raise UnsupportedMediaTypeError("missing Content-Type: send application/json")
    if not body:
        raise RequestError("empty body: send a JSON object", [{"loc": ["body"], "msg": "empty"}])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestError(f"body is not valid JSON: {exc}", [{"loc": ["body"], "msg": str(exc)}]) from exc


def json_values(array: np.ndarray) -> Any:
    """An array in a form orjson writes directly (numeric arrays), or plain lists (strings, objects)."""
    if array.dtype.kind in "biuf" and array.dtype != np.float16:
        return array
    return array.tolist()


def dumps(payload: Any) -> bytes:
    try:
        return orjson.dumps(payload, option=JSON_OPTIONS, default=_fallback)
    except TypeError:  # rare: an array orjson refuses outright (non-native byte order, not C-contiguous)
        return orjson.dumps(_plain(payload), option=JSON_OPTIONS, default=_fallback)


def _fallback(value: Any) -> Any:
    """What orjson does not write itself: numpy arrays of other layouts or dtypes, numpy scalars of other kinds."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _plain(value: Any) -> Any:
    """``value`` with every numpy array turned into lists (a model's ``predict_proba`` may return a transposed
    view or a big-endian array, which orjson does not take)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def relocate(error: SignatureError, *prefix: Any) -> SignatureError:
    """The same error with each detail's location prefixed by where the input sat in the body."""
    details = [{**d, "loc": [*prefix, *d["loc"]]} for d in error.details]
    return SignatureError(error.message, details)


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(f"body must be a JSON object, got {type(body).__name__}",
                           [{"loc": ["body"], "msg": "expected an object"}])
    return body
