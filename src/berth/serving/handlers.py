"""What each route of the server does, and the one table that binds paths to it.

A *prediction handler* takes ``(plane, slot, request)`` and returns ``(payload, status)``; it decodes with its
protocol module, predicts through the data plane and encodes. :class:`Served` turns a handler into an endpoint:
it pins the model's slot for the request, times and counts it, renders errors, adds the model headers and hands
the prediction to the recorder. A new protocol is a protocol module plus rows in :data:`PREDICTION_ROUTES`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from berth.errors import ModelNotFoundError, SignatureError
from berth.serving.codec import decode_json
from berth.serving.dataplane import DataPlane
from berth.serving.fastpath import Endpoint
from berth.serving.metrics import UNKNOWN, Metrics
from berth.serving.protocols import binary, kserve_v1, mlflow, sagemaker, simple, v2
from berth.serving.recording import Recorder
from berth.serving.responses import error_response, json_response
from berth.serving.shadow import ShadowDispatcher, ShadowJob
from berth.serving.slot import ROUTE_KEY_HEADER, SlotView

Handler = Callable[[DataPlane, SlotView, Request], Awaitable[tuple[Any, int]]]
METADATA_ROUTES = ("/v2/metadata", "/v2/ready")  # failures of these are not a version's prediction errors

# ---------------------------------------------------------------------------------------------- prediction


async def predict(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    key, data, probabilities = simple.decode(decode_json(await request.body(), request.headers.get("content-type")))
    runner = slot.runner
    try:
        result = await plane.predict(runner, data, probabilities)
    except SignatureError as exc:
        raise simple.located(exc, key) from None
    request.state.prediction = (runner, data, result)  # for the prediction log
    return simple.encode(result, slot.name, runner.version, runner.signature.outputs.classes), 200


async def invocations(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    answer = sagemaker.answer_format(request.headers.get("accept"))  # 406 before any work
    runner = slot.runner
    key, data = mlflow.decode(await request.body(), request.headers.get("content-type"), runner.signature)
    try:
        result = await plane.predict(runner, data)
    except SignatureError as exc:
        raise mlflow.located(exc, key) from None
    request.state.prediction = (runner, data, result)  # for the prediction log
    return (mlflow.encode(result) if answer == "json" else sagemaker.encode(result.predictions, answer)), 200


async def infer(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    runner = slot.runner
    call = v2.read(await request.body(), request.headers.get("content-type"), request.headers.get(binary.HEADER),
                   runner.signature)
    result = await plane.predict(runner, call.data, call.probabilities)
    request.state.prediction = (runner, call.data, result)  # for the prediction log
    return v2.respond(result, call, slot.name, runner.version), 200


async def v1_predict(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    key, instances = kserve_v1.decode(decode_json(await request.body(), request.headers.get("content-type")))
    runner = slot.runner
    try:
        result = await plane.predict(runner, instances)
    except SignatureError as exc:
        raise kserve_v1.located(exc, key) from None
    request.state.prediction = (runner, instances, result)  # for the prediction log
    return kserve_v1.encode(result), 200


async def model_metadata(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    runner = slot.runner
    return v2.metadata(runner.signature, slot.name, runner.version, runner.model.manifest.flavor), 200


async def model_ready(plane: DataPlane, slot: SlotView, request: Request) -> tuple[Any, int]:
    return {"name": slot.name, "ready": slot.ready}, 200 if slot.ready else 503


@dataclass(frozen=True)
class PredictionRoute:
    """One row of the route table: ``paths`` answered by ``handler``, counted in metrics as ``metric``.

    ``POST`` routes are also dispatched by the pure-ASGI fast path (:mod:`berth.serving.fastpath`).
    """

    paths: tuple[str, ...]
    handler: Handler
    method: str
    metric: str
    tag: str
    summary: str
    v2_errors: bool = False  # the Open Inference Protocol's {"error": "..."} shape
    openapi_extra: dict[str, Any] | None = field(default=None, compare=False)


ANY_JSON: dict[str, Any] = {"requestBody": {"content": {"application/json": {"schema": {}}}}}
V2_MODEL = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")

PREDICTION_ROUTES: tuple[PredictionRoute, ...] = (
    PredictionRoute(("/predict", "/models/{name}/predict"), predict, "POST", "/predict", "simple", "Predict",
                    openapi_extra=ANY_JSON),
    PredictionRoute(("/invocations", "/models/{name}/invocations"), invocations, "POST", "/invocations", "mlflow",
                    "MLflow / SageMaker scoring"),
    PredictionRoute(V2_MODEL, model_metadata, "GET", "/v2/metadata", "v2", "Model metadata", v2_errors=True),
    PredictionRoute(tuple(p + "/ready" for p in V2_MODEL), model_ready, "GET", "/v2/ready", "v2", "Model ready",
                    v2_errors=True),
    PredictionRoute(tuple(p + "/infer" for p in V2_MODEL), infer, "POST", "/v2/infer", "v2", "Inference",
                    v2_errors=True),
    PredictionRoute(("/v1/models/{name}",), model_ready, "GET", "/v1/ready", "kserve-v1", "Model ready (KServe V1)",
                    v2_errors=True),
    PredictionRoute((kserve_v1.PREDICT_ROUTE,), v1_predict, "POST", "/v1/predict", "kserve-v1",
                    "Predict (KServe V1)", v2_errors=True),
)

# ---------------------------------------------------------------------------------------------- endpoints


class Served:
    """The server's state a request needs (data plane, metrics, recorder), and the endpoints over it."""

    def __init__(self, plane: DataPlane, metrics: Metrics, recorder: Recorder, version: str,
                 shadows: ShadowDispatcher) -> None:
        self.plane = plane
        self.metrics = metrics
        self.recorder = recorder
        self.version = version
        self.shadows = shadows

    def endpoint(self, route: str, handler: Handler, *, v2_errors: bool = False, choose: bool = True) -> Endpoint:
        """``handler`` as an endpoint: resolve the model, choose the version (baseline or canary; ``choose`` is
        false for metadata routes), time it, count it, render errors, add headers, hand a copy to the shadow."""
        plane, metrics, recorder, shadows = self.plane, self.metrics, self.recorder, self.shadows

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            name = request.path_params.get("name")
            request_id = recorder.request_id(request)
            # a name the client chose becomes a label value only once it names a served model
            model = "" if name is None else name if name in plane.slots else UNKNOWN
            version, headers = "", {"x-request-id": request_id}
            metrics.in_flight.inc()
            slot: SlotView | None = None
            failure: Exception | None = None
            wanted = request.path_params.get("version")
            try:
                # this request stays on the version chosen now, whatever swaps or weight changes follow
                slot = plane.slot(name).pin(request.headers.get(ROUTE_KEY_HEADER), wanted, choose)
                model, version = slot.name, slot.runner.version
                headers = {"x-berth-model": model, "x-berth-model-version": version, "x-request-id": request_id}
                if wanted is not None and wanted != version:
                    raise ModelNotFoundError(f"model {model!r} has no version {wanted!r}; serving {version}")
                payload, status = await handler(plane, slot, request)
                if isinstance(payload, Response):  # a protocol's own body (binary tensors, CSV, JSON Lines)
                    payload.headers.update(headers)
                    response = payload
                else:
                    response = json_response(payload, status, headers)
            except Exception as exc:
                response = error_response(exc, v2=v2_errors, headers=headers)
                failure = exc
            finally:
                metrics.in_flight.dec()
                if slot is not None:
                    slot.release()
            metrics.requests.labels(route, model, version, str(response.status_code)).inc()
            elapsed = time.perf_counter() - started
            metrics.latency.labels(route, model).observe(elapsed)
            if response.status_code < 400:
                recorder.record(request, request_id, model, elapsed)
            elif response.status_code >= 500 and slot is not None and route not in METADATA_ROUTES:
                recorder.record_error(slot.runner, request_id, model, elapsed, failure)  # the version failed
            if slot is not None and slot.shadow is not None:
                captured = getattr(request.state, "prediction", None) if response.status_code < 400 else None
                if captured is None:
                    slot.shadow.active -= 1
                else:
                    _, data, result = captured
                    shadows.offer(ShadowJob(model, slot.shadow, request_id, data, result.probabilities is not None,
                                            len(result.predictions)))
            return response

        return endpoint

    # ------------------------------------------------------------------ health, metadata, metrics

    async def live(self) -> Response:
        stuck = self.plane.stuck  # a predict call outlived every request waiting for it: only a restart helps
        return json_response({"live": not stuck}, 503 if stuck else 200)

    async def ready(self) -> Response:
        return json_response(self.plane.readiness(), 200 if self.plane.ready else 503)

    async def ping(self) -> Response:
        ready = self.plane.ready
        return json_response({"status": "ok" if ready else "loading"}, 200 if ready else 503)

    async def server_metadata(self) -> Response:
        return json_response({"name": "berth", "version": self.version, "extensions": v2.EXTENSIONS})

    async def v2_live(self) -> Response:
        return json_response({"live": True})

    async def v2_ready(self) -> Response:
        return json_response({"ready": self.plane.ready}, 200 if self.plane.ready else 503)

    async def v1_models(self) -> Response:
        return json_response({"models": sorted(self.plane.slots)})

    async def prometheus(self) -> Response:
        body, content_type = self.metrics.render()
        return Response(body, media_type=content_type)

    def status_routes(self) -> list[tuple[str, Callable[[], Awaitable[Response]], str]]:
        """``(path, endpoint, tag)`` of the ``GET`` routes that answer from the server's state."""
        return [("/health/live", self.live, "health"), ("/health/ready", self.ready, "health"),
                ("/ping", self.ping, "mlflow"), ("/v2", self.server_metadata, "v2"),
                ("/v2/health/live", self.v2_live, "v2"), ("/v2/health/ready", self.v2_ready, "v2"),
                ("/v1/models", self.v1_models, "kserve-v1"),
                ("/metrics", self.prometheus, "health")]
