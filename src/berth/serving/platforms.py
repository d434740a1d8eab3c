"""Cloud platform contracts: what SageMaker, Vertex AI, Azure ML and KServe expect of a serving container.

- **SageMaker** starts the container as ``docker run IMAGE serve`` and sends ``GET /ping`` and
  ``POST /invocations`` to port 8080 (or ``SAGEMAKER_BIND_TO_PORT``). ``berth serve`` takes a bare ``serve``
  argument as that start signal (:func:`split_start_argument`); the routes are the MLflow protocol's.
- **Vertex AI** sets ``AIP_HTTP_PORT``, ``AIP_HEALTH_ROUTE`` and ``AIP_PREDICT_ROUTE``; the predict route takes
  ``{"instances": [...], "parameters": {...}}`` and answers ``{"predictions": [...]}``. The health route answers
  200 once every model is ready, 503 before.
- **Azure ML** online endpoints with a custom container: ``POST /score`` (plus the health routes, named in the
  environment's ``inference_config``). ``/score`` takes MLflow's bodies and Azure's own ``{"input_data": ...}``.
- **KServe**: the Open Inference Protocol routes under ``/v2``, always served.

The platform is the ``platform`` setting (``BERTH_PLATFORM``); empty means: detect it from the variables the
platform sets (``AIP_*`` → Vertex, ``SAGEMAKER_BIND_TO_PORT`` or the ``serve`` argument → SageMaker);
``none`` ignores them. A port given on the command line always wins; a platform's port variable wins over
``BERTH_PORT``, because the platform, not the image, decides where it sends traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from berth.errors import SignatureError, UsageError
from berth.serving import openapi
from berth.serving.codec import decode_json, json_values, media_type, relocate, require_object
from berth.serving.protocols import mlflow, simple
from berth.serving.responses import json_response
from berth.serving.settings import ServeSettings

if TYPE_CHECKING:
    from berth.serving.dataplane import DataPlane
    from berth.serving.handlers import Served
    from berth.serving.slot import SlotView

BERTH_ROUTES = {"/predict", "/invocations", "/ping", "/score", "/health/live", "/health/ready", "/metrics", "/docs",
                "/openapi.json", "/v2"}


# ---------------------------------------------------------------------------------------------- codecs


def vertex_decode(body: Any) -> Any:
    """``{"instances": [...], "parameters": {...}}``: the instances are rows or records, as ``/predict`` takes."""
    body = require_object(body)
    unknown = sorted(body.keys() - {"instances", "parameters"})
    details = [{"loc": ["body", key], "msg": "unknown key"} for key in unknown]
    if "instances" not in body:
        details.insert(0, {"loc": ["body", "instances"], "msg": "required"})
    elif not isinstance(body["instances"], list):
        details.insert(0, {"loc": ["body", "instances"], "msg": "expected a list of instances"})
    if "parameters" in body and not isinstance(body["parameters"], dict | type(None)):
        details.append({"loc": ["body", "parameters"], "msg": "expected an object"})
    if details:
        raise SignatureError("request body: " + "; ".join(f"{d['loc'][-1]}: {d['msg']}" for d in details), details)
    return body["instances"]


def azure_decode(body: bytes, content_type: str | None, signature: Any) -> tuple[list[Any], Any]:
    """Azure's ``{"input_data": ...}`` (split-oriented table or rows), else any body ``/invocations`` takes."""
    if media_type(content_type) not in mlflow.CSV_TYPES:
        payload = decode_json(body, content_type)
        if isinstance(payload, dict) and "input_data" in payload:
            if len(payload) != 1:
                extra = sorted(payload.keys() - {"input_data"})
                raise SignatureError(f"unexpected keys beside input_data: {', '.join(extra)}",
                                     [{"loc": ["body", key], "msg": "unknown key"} for key in extra])
            data = payload["input_data"]
            if isinstance(data, dict) and "data" in data:
                data = mlflow.split_to_columns(data)
            return ["body", "input_data"], data
    key, data = mlflow.decode(body, content_type, signature)
    return ["body", key], data


# ---------------------------------------------------------------------------------------------- routes


async def score(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    """Azure ML's ``POST /score``."""
    where, data = azure_decode(await request.body(), request.headers.get("content-type"), slot.runner.signature)
    try:
        result = await plane.predict(slot.runner, data)
    except SignatureError as exc:
        raise relocate(exc, *where) from None
    request.state.prediction = (slot.runner, data, result)  # for the prediction log
    return {"predictions": json_values(result.predictions)}, 200


async def vertex_predict(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    """Vertex AI's predict route."""
    instances = vertex_decode(decode_json(await request.body(), request.headers.get("content-type")))
    _, data, _ = simple.decode({"instances": instances})
    try:
        result = await plane.predict(slot.runner, data)
    except SignatureError as exc:
        raise relocate(exc, "body", "instances") from None
    request.state.prediction = (slot.runner, data, result)  # for the prediction log
    return {"predictions": json_values(result.predictions)}, 200


def add_routes(app: FastAPI, settings: ServeSettings, served: Served) -> None:
    """Register Azure's ``/score`` and, when configured, Vertex AI's predict and health routes."""
    plane = served.plane

    async def vertex_health() -> Response:
        return json_response({"ready": plane.ready}, 200 if plane.ready else 503)

    taken = {getattr(route, "path", None) for route in app.routes} | BERTH_ROUTES
    app.add_api_route("/score", served.endpoint("/score", score), methods=["POST"], tags=["azure"],
                      summary="Azure ML scoring",
                      responses=openapi.error_responses(openapi.PREDICTION_ERRORS, auth=bool(settings.api_keys)))
    extra: list[tuple[str, Any, str]] = []
    if settings.predict_route:
        extra.append((settings.predict_route, served.endpoint("/vertex/predict", vertex_predict), "POST"))
    if settings.health_route:
        extra.append((settings.health_route, vertex_health, "GET"))
    for path, endpoint, method in extra:
        if not path.startswith("/"):
            raise UsageError(f"route {path!r} must start with '/'")
        if path in taken or path.startswith(("/models/", "/v2/")):
            raise UsageError(f"route {path} is one of berth's own routes; choose another (AIP_PREDICT_ROUTE, "
                             "AIP_HEALTH_ROUTE, BERTH_PREDICT_ROUTE, BERTH_HEALTH_ROUTE)")
        taken.add(path)
        app.add_api_route(path, endpoint, methods=[method], tags=["vertex"], summary=f"Vertex AI ({method})",
                          responses=openapi.error_responses(openapi.PREDICTION_ERRORS, auth=bool(settings.api_keys)))
