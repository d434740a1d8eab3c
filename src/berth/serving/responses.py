"""Responses and the one place errors become HTTP answers.

Every :class:`BerthError` renders as ``{"error": {"code", "message", "details": [{"loc", "msg"}]}}`` with the
status its class carries; the Open Inference Protocol keeps its own ``{"error": "..."}`` shape. Anything else
is a bug or a model failure: a 500 with an error id that the log line carries too.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from starlette.responses import Response

from berth.errors import BerthError, PredictionError
from berth.serving.codec import dumps

log = logging.getLogger("berth.serve")


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_payload(error: BerthError, *, v2: bool = False) -> dict[str, Any]:
    return {"error": error.message} if v2 else {"error": error.to_dict()}


def error_response(exc: BaseException, *, v2: bool = False, headers: dict[str, str] | None = None) -> Response:
    if isinstance(exc, BerthError) and not isinstance(exc, PredictionError):
        return json_response(error_payload(exc, v2=v2), exc.status_code, headers)
    error_id = uuid.uuid4().hex[:12]
    log.error("error %s: %s", error_id, exc, exc_info=exc)
    message = f"internal error {error_id}: the model failed on this input" if isinstance(
        exc, PredictionError) else f"internal error {error_id}"
    error = PredictionError(message, [{"loc": [], "msg": f"error id {error_id}"}])
    error.code = "prediction_failed" if isinstance(exc, PredictionError) else "internal_error"
    return json_response(error_payload(error, v2=v2), 500, headers)
