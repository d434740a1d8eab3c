"""``POST /invocations`` and ``GET /ping``: MLflow's (and SageMaker's) scoring protocol.

JSON bodies hold exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``
(``params`` is accepted and ignored, as MLflow does for models without parameters); ``text/csv`` bodies are a
table, with or without a header line, and ``application/jsonlines`` bodies one row per line, as SageMaker sends
them (:mod:`berth.serving.protocols.sagemaker`). The answer is ``{"predictions": [...]}``, as ``mlflow models
serve`` gives, or CSV / JSON Lines when ``Accept`` asks for them.
"""

from __future__ import annotations

from typing import Any

from berth.errors import SignatureError, UnsupportedMediaTypeError
from berth.serving.codec import decode_json, json_values, media_type, relocate, require_object
from berth.serving.protocols import sagemaker
from berth.serving.slot import Prediction
from berth.signature import Signature

INPUT_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
CSV_TYPES = sagemaker.CSV_TYPES


def decode(body: bytes, content_type: str | None, signature: Signature) -> tuple[str, Any]:
    kind = media_type(content_type)
    if kind in CSV_TYPES:
        return "csv", sagemaker.read_csv(body, signature)
    if kind in sagemaker.JSONLINES_TYPES:
        return "jsonlines", sagemaker.read_jsonlines(body, signature)
    if kind and kind != "application/json":
        raise UnsupportedMediaTypeError(
            f"expected Content-Type application/json, text/csv or application/jsonlines, got {kind}",
            [{"loc": ["header", "content-type"], "msg": f"unsupported: {kind}"}])
    payload = require_object(decode_json(body, content_type))
    present = [key for key in INPUT_KEYS if key in payload]
    if len(present) != 1:
        found = "none" if not present else ", ".join(present)
        raise SignatureError(f"expected exactly one of {', '.join(INPUT_KEYS)}; got {found}",
                             [{"loc": ["body"], "msg": "expected exactly one input key"}])
    key = present[0]
    data = payload[key]
    if key == "dataframe_split":
        data = split_to_columns(data)
    return key, data


def split_to_columns(split: Any) -> Any:
    if not isinstance(split, dict) or "data" not in split:
        raise SignatureError("dataframe_split needs an object with 'columns' and 'data'",
                             [{"loc": ["body", "dataframe_split"], "msg": "expected {columns, data}"}])
    rows = split["data"]
    columns = split.get("columns")
    if columns is None:
        return rows
    if not isinstance(columns, list) or not all(isinstance(c, str | int) and not isinstance(c, bool)
                                                for c in columns):
        raise SignatureError("dataframe_split: 'columns' must be a list of column names",
                             [{"loc": ["body", "dataframe_split", "columns"], "msg": "expected a list of names"}])
    if not isinstance(rows, list) or not all(isinstance(r, list) and len(r) == len(columns) for r in rows):
        raise SignatureError(f"dataframe_split: every row of 'data' needs {len(columns)} values",
                             [{"loc": ["body", "dataframe_split", "data"], "msg": "rows do not match columns"}])
    return {str(name): [row[i] for row in rows] for i, name in enumerate(columns)}


def located(error: SignatureError, key: str) -> SignatureError:
    return relocate(error, "body", key)


def encode(prediction: Prediction) -> dict[str, Any]:
    return {"predictions": json_values(prediction.predictions)}
