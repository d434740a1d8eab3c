"""Monitoring routes of the server: ``POST /feedback`` (true labels) and the live ``/dashboard``."""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from berth.errors import BerthError, ModelNotFoundError, RequestError
from berth.monitoring.dashboard import create_router
from berth.monitoring.feedback import feedback_table
from berth.monitoring.store import FEEDBACK
from berth.serving import openapi
from berth.serving.codec import decode_json
from berth.serving.responses import error_response, json_response

if TYPE_CHECKING:
    from berth.serving.dataplane import DataPlane
    from berth.serving.recording import Recorder


class FeedbackQueueFullError(BerthError):
    status_code = 503
    code = "feedback_queue_full"


def install(app: FastAPI, plane: DataPlane, recorder: Recorder) -> None:
    """Add ``POST /feedback`` and the dashboard to ``app``."""
    store = recorder.store

    async def feedback(request: Request) -> Response:
        try:
            body = decode_json(await request.body(), request.headers.get("content-type"))
            items = body if isinstance(body, list) else [body]
            groups: dict[str, list[Any]] = defaultdict(list)
            for item in items:
                model = (item.get("model") if isinstance(item, dict) else None) or request.query_params.get("model")
                groups[resolve_model(plane, model)].append(
                    {k: v for k, v in item.items() if k != "model"} if isinstance(item, dict) else item)
            tables = {model: feedback_table(group) for model, group in groups.items()}
            if recorder.enabled:  # the background writer batches labels with the predictions
                if sum(t.num_rows for t in tables.values()) + recorder.log.feedback_queued > recorder.log.max_queue:
                    raise FeedbackQueueFullError("too many labels wait to be written; retry in a few seconds")
                for model, table in tables.items():
                    recorder.log.offer_feedback(model, table)
            else:
                loop = asyncio.get_running_loop()
                for model, table in tables.items():
                    await loop.run_in_executor(None, functools.partial(store.write, model, table, kind=FEEDBACK))
        except Exception as exc:
            return error_response(exc)
        return json_response({"stored": sum(t.num_rows for t in tables.values()),
                              "models": {m: t.num_rows for m, t in tables.items()}})

    app.add_api_route("/feedback", feedback, methods=["POST"], tags=["monitoring"], summary="True labels",
                      description="`{\"request_id\": ..., \"label\": ...}` or a list of them; `model` (in the "
                                  "body or the query) is needed only when several models are served. Labels are "
                                  "written with the next batch of the prediction log (within "
                                  "`log_flush_interval_s`).",
                      responses=openapi.error_responses((*openapi.BODY_ERRORS, 404, 503)),
                      openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}}})
    app.include_router(create_router(store, lambda: live_status(plane, recorder)))


def resolve_model(plane: DataPlane, model: str | None) -> str:
    names = sorted(plane.slots)
    if model is None:
        if len(names) == 1:
            return names[0]
        raise RequestError(f"this server holds {len(names)} models; name one with \"model\" (one of: "
                           f"{', '.join(names) or 'none'})", [{"loc": ["body", "model"], "msg": "missing"}])
    if not isinstance(model, str) or model not in plane.slots:
        raise ModelNotFoundError(f"no model named {model!r}; served: {', '.join(names) or 'none'}",
                                 [{"loc": ["body", "model"], "msg": f"unknown model {model!r}"}])
    return model


def live_status(plane: DataPlane, recorder: Recorder) -> dict[str, Any]:
    """What the running server knows beyond the log: readiness, versions, request and error counts."""
    requests: dict[str, float] = defaultdict(float)
    errors: dict[str, float] = defaultdict(float)
    for metric in plane.metrics.registry.collect():
        if metric.name != "berth_requests":
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                model = sample.labels.get("model", "")
                requests[model] += sample.value
                if sample.labels.get("status", "200") >= "400":
                    errors[model] += sample.value
    models = {name: {"ready": slot.ready, "version": slot.runner.version, "requests": requests.get(name, 0),
                     "errors": errors.get(name, 0)} for name, slot in plane.slots.items()}
    return {"models": models, "server": {"ready": plane.ready, "logging": recorder.enabled,
                                         "log_location": str(recorder.store.root), "log_writable": recorder.writable,
                                         "log_written": recorder.log.written, "log_dropped": recorder.log.dropped,
                                         "log_queued": len(recorder.log)}}
