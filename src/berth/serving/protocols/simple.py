"""``POST /predict``: the tutorial's Flask app, done right.

Accepts ``{"features": [...]}`` (one row, or one record), ``{"instances": [...]}`` (rows or records) and
``{"inputs": {"column": [...]}}``; ``"probabilities": true`` adds class probabilities and class names.
"""

from __future__ import annotations

from typing import Any

from berth.errors import SignatureError
from berth.serving.codec import json_values, relocate, require_object
from berth.serving.slot import Prediction

INPUT_KEYS = ("features", "instances", "inputs")


def decode(body: Any) -> tuple[str, Any, bool]:
    """The input key used, the input data, and whether probabilities are wanted."""
    body = require_object(body)
    present = [key for key in INPUT_KEYS if key in body]
    unknown = sorted(body.keys() - {*INPUT_KEYS, "probabilities"})
    details: list[dict[str, Any]] = [{"loc": ["body", key], "msg": "unknown key"} for key in unknown]
    if len(present) != 1:
        found = "none" if not present else ", ".join(present)
        details.insert(0, {"loc": ["body"], "msg": f"expected exactly one of features, instances, inputs; got {found}"})
    probabilities = body.get("probabilities", False)
    if not isinstance(probabilities, bool):
        details.append({"loc": ["body", "probabilities"], "msg": "expected true or false"})
    if details:
        raise SignatureError("request body: " + "; ".join(d["msg"] for d in details), details)
    key = present[0]
    data = body[key]
    if key == "features" and isinstance(data, list) and data and isinstance(data[0], list):
        raise SignatureError("'features' holds one row; send several rows as 'instances'",
                             [{"loc": ["body", "features"], "msg": "expected one row, got a list of rows"}])
    return key, [data] if key == "features" and isinstance(data, dict) else data, probabilities


def located(error: SignatureError, key: str) -> SignatureError:
    return relocate(error, "body", key)


def encode(prediction: Prediction, model: str, version: str, classes: list[Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"predictions": json_values(prediction.predictions), "model": model,
                               "version": version}
    if prediction.probabilities is not None:
        payload["probabilities"] = json_values(prediction.probabilities)
        payload["classes"] = classes
    return payload
