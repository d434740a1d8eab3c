"""JSON responses of the server, and errors as responses.

Errors are rendered by :func:`berth.errors.render_error`: every :class:`BerthError` as ``{"error": {"code",
"message", "details": [{"loc", "msg"}]}}`` with the status its class carries (the Open Inference Protocol keeps
its own ``{"error": "..."}`` shape); anything else, a bug or a model failure, as a 500 with an error id that the
log line carries too.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from berth.errors import render_error
from berth.serving.codec import dumps


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json", headers=headers)


def error_response(exc: BaseException, *, v2: bool = False, headers: dict[str, str] | None = None) -> Response:
    status, body = render_error(exc, v2=v2)
    return json_response(body, status, headers)
