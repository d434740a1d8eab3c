"""KServe's V1 data plane for predictors: ``GET /v1/models``, ``GET /v1/models/NAME``, ``POST /v1/models/NAME:predict``.

A request is ``{"instances": [...]}`` (or ``{"inputs": [...]}``, which KServe takes alike), each instance a row of
values in the signature's column order or a record of columns; ``parameters`` is accepted and ignored. The
answer is ``{"predictions": [...]}``. Errors are ``{"error": "message"}`` with KServe's statuses: 400 for a
malformed body, 404 for an unknown model (the message names the served ones), 503 while a model is not ready.
"""

from __future__ import annotations

from typing import Any

from berth.errors import RequestError
from berth.serving.codec import json_values, relocate, require_object
from berth.serving.slot import Prediction

PREDICT_ROUTE = "/v1/models/{name}:predict"

INPUT_KEYS = ("instances", "inputs")


def decode(body: Any) -> tuple[str, list[Any]]:
    """The input key used and the instances."""
    body = require_object(body)
    present = [key for key in INPUT_KEYS if key in body]
    details = [{"loc": ["body", key], "msg": "unknown key"} for key in sorted(body.keys() - {*INPUT_KEYS,
                                                                                              "parameters"})]
    if len(present) != 1:
        details.insert(0, {"loc": ["body"], "msg": "expected exactly one of instances, inputs; got "
                           + (", ".join(present) or "none")})
    elif not isinstance(body[present[0]], list) or not body[present[0]]:
        details.insert(0, {"loc": ["body", present[0]], "msg": "expected a non-empty list of instances"})
    if "parameters" in body and not isinstance(body["parameters"], dict | type(None)):
        details.append({"loc": ["body", "parameters"], "msg": "expected an object"})
    if details:
        raise RequestError("request body: " + "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}"
                                                         for d in details), details)
    return present[0], body[present[0]]


def located(error: Any, key: str) -> Any:
    return relocate(error, "body", key)


def encode(prediction: Prediction) -> dict[str, Any]:
    return {"predictions": json_values(prediction.predictions)}
