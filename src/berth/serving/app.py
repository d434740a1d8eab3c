"""The ASGI application: routes of the three protocols, health, metrics and docs around one data plane."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

import berth
from berth.errors import BerthError, ModelNotFoundError, SignatureError
from berth.serving import monitor_routes, openapi, platforms
from berth.serving.codec import decode_json
from berth.serving.dataplane import DataPlane, ModelSource
from berth.serving.fastpath import PredictionRoutes
from berth.serving.metrics import UNKNOWN, Metrics
from berth.serving.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from berth.serving.protocols import mlflow, simple, v2
from berth.serving.recording import Recorder
from berth.serving.responses import error_response, json_response
from berth.serving.rollout import AliasFollower
from berth.serving.settings import ServeSettings
from berth.serving.slot import SlotView

log = logging.getLogger("berth.serve")
Handler = Callable[[SlotView, Request], Awaitable[tuple[Any, int]]]


def create_app(sources: Sequence[Any], settings: ServeSettings | None = None, *,
               load_in_background: bool = True) -> FastAPI:
    """Build the server for ``sources`` (bundle URIs, ``LoadedModel`` objects or :class:`ModelSource`)."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    plane = DataPlane([ModelSource.of(s) for s in sources], settings, metrics)
    follower = AliasFollower(plane, settings.poll_interval_s)
    recorder = Recorder(settings, metrics)  # prediction log, request ids, drift gauges (monitoring)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().run_in_executor(None, plane.load_all)
        loading.add_done_callback(lambda _: log_startup(plane, settings))
        loading.add_done_callback(lambda _: follower.start())  # slots started on models:/NAME@ALIAS
        if not load_in_background:
            await loading
        await recorder.start(plane)
        yield
        await follower.stop()
        await plane.close()
        await recorder.stop()  # flushes the prediction log

    app = FastAPI(title="berth model server", version=berth.__version__, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, **telemetry_options(settings.telemetry))
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.recorder = recorder

    def served(route: str, v2_errors: bool = False) -> Callable[[Handler], Callable[..., Awaitable[Response]]]:
        """Wrap a prediction handler: resolve the model, time it, count it, render errors, add headers."""

        def wrap(handler: Handler) -> Callable[..., Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                started = time.perf_counter()
                name = request.path_params.get("name")
                request_id = recorder.request_id(request)
                # a name the client chose is a label value only once it names a served model
                model = "" if name is None else name if name in plane.slots else UNKNOWN
                version, headers = "", {"x-request-id": request_id}
                metrics.in_flight.inc()
                slot: SlotView | None = None
                try:
                    slot = plane.slot(name).pin()  # this request stays on this version, whatever swaps
                    model, version = slot.name, slot.runner.version
                    headers = {"x-berth-model": model, "x-berth-model-version": version, "x-request-id": request_id}
                    wanted = request.path_params.get("version")
                    if wanted is not None and wanted != version:
                        raise ModelNotFoundError(f"model {model!r} has no version {wanted!r}; serving {version}")
                    payload, status = await handler(slot, request)
                    response = json_response(payload, status, headers)
                except Exception as exc:
                    response = error_response(exc, v2=v2_errors, headers=headers)
                finally:
                    metrics.in_flight.dec()
                    if slot is not None:
                        slot.release()
                metrics.requests.labels(route, model, version, str(response.status_code)).inc()
                elapsed = time.perf_counter() - started
                metrics.latency.labels(route, model).observe(elapsed)
                if response.status_code < 400:
                    recorder.record(request, request_id, model, elapsed)
                return response

            return endpoint

        return wrap

    @served("/predict")
    async def predict(slot: SlotView, request: Request) -> tuple[Any, int]:
        key, data, probabilities = simple.decode(decode_json(await request.body(), request.headers.get(
            "content-type")))
        runner = slot.runner
        try:
            result = await plane.predict(runner, data, probabilities)
        except SignatureError as exc:
            raise simple.located(exc, key) from None
        request.state.prediction = (runner, data, result)  # for the prediction log
        return simple.encode(result, slot.name, runner.version, runner.signature.outputs.classes), 200

    @served("/invocations")
    async def invocations(slot: SlotView, request: Request) -> tuple[Any, int]:
        key, data = mlflow.decode(await request.body(), request.headers.get("content-type"))
        runner = slot.runner
        try:
            result = await plane.predict(runner, data)
        except SignatureError as exc:
            raise mlflow.located(exc, key) from None
        request.state.prediction = (runner, data, result)  # for the prediction log
        return mlflow.encode(result), 200

    @served("/v2/infer", v2_errors=True)
    async def infer(slot: SlotView, request: Request) -> tuple[Any, int]:
        runner = slot.runner
        data, requested, request_id = v2.decode(decode_json(await request.body(), request.headers.get(
            "content-type")), runner.signature)
        result = await plane.predict(runner, data, "predict_proba" in requested)
        request.state.prediction = (runner, data, result)  # for the prediction log
        return v2.encode(result, requested, slot.name, runner.version, request_id), 200

    @served("/v2/metadata", v2_errors=True)
    async def model_metadata(slot: SlotView, request: Request) -> tuple[Any, int]:
        runner = slot.runner
        return v2.metadata(runner.signature, slot.name, runner.version, runner.model.manifest.flavor), 200

    @served("/v2/ready", v2_errors=True)
    async def model_ready(slot: SlotView, request: Request) -> tuple[Any, int]:
        return {"name": slot.name, "ready": slot.ready}, 200 if slot.ready else 503

    auth = bool(settings.api_keys)
    errors = openapi.error_responses(openapi.PREDICTION_ERRORS, auth=auth)
    v2_errors = openapi.error_responses(openapi.PREDICTION_ERRORS, v2=True, auth=auth)
    v2_read_errors = openapi.error_responses((404, 503), v2=True, auth=auth)
    hot_routes = []  # also dispatched by PredictionRoutes, ahead of FastAPI's router
    for path in ("/predict", "/models/{name}/predict"):
        app.add_api_route(path, predict, methods=["POST"], tags=["simple"], summary="Predict", responses=errors,
                          openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}},
                                         "parameters": openapi.path_parameters(*path_names(path))})
        hot_routes.append((path, predict))
    app.add_api_route("/invocations", invocations, methods=["POST"], tags=["mlflow"], responses=errors,
                      summary="MLflow / SageMaker scoring")
    hot_routes.append(("/invocations", invocations))
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        extra = {"parameters": openapi.path_parameters(*path_names(prefix))}
        app.add_api_route(prefix, model_metadata, methods=["GET"], tags=["v2"], summary="Model metadata",
                          responses=v2_read_errors, openapi_extra=extra)
        app.add_api_route(prefix + "/ready", model_ready, methods=["GET"], tags=["v2"], summary="Model ready",
                          responses=v2_read_errors, openapi_extra=extra)
        app.add_api_route(prefix + "/infer", infer, methods=["POST"], tags=["v2"], summary="Inference",
                          responses=v2_errors, openapi_extra=extra)
        hot_routes.append((prefix + "/infer", infer))
    platforms.add_routes(app, settings, served)  # Azure's /score; Vertex AI's routes when configured
    monitor_routes.install(app, plane, recorder)  # POST /feedback, /dashboard

    @app.get("/health/live", tags=["health"], responses=openapi.probe_responses("live"))
    async def live() -> Response:
        stuck = plane.stuck  # a predict call outlived every request waiting for it: only a restart helps
        return json_response({"live": not stuck}, 503 if stuck else 200)

    @app.get("/health/ready", tags=["health"], responses=openapi.probe_responses("ready"))
    async def ready() -> Response:
        return json_response(plane.readiness(), 200 if plane.ready else 503)

    @app.get("/ping", tags=["mlflow"], responses=openapi.probe_responses("status"))
    async def ping() -> Response:
        return json_response({"status": "ok" if plane.ready else "loading"}, 200 if plane.ready else 503)

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> Response:
        return json_response({"name": "berth", "version": berth.__version__, "extensions": []})

    @app.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["v2"], responses=openapi.probe_responses("ready"))
    async def v2_ready() -> Response:
        return json_response({"ready": plane.ready}, 200 if plane.ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response, responses=openapi.METRICS_RESPONSES)
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.exception_handler(BerthError)
    async def berth_error(request: Request, exc: BerthError) -> Response:
        return error_response(exc, v2=request.url.path.startswith("/v2"))

    app.openapi = lambda: typed_openapi(app, plane)  # type: ignore[method-assign]
    app.add_middleware(PredictionRoutes, routes=hot_routes)  # innermost: inside the body limit and auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys, protect_all=settings.auth_all,
                           protect_docs=settings.protect_docs, protect_metrics=settings.protect_metrics)
    return app


def path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def telemetry_options(enabled: bool) -> dict[str, Any]:
    """FastAPI's native OpenTelemetry instrumentation, off unless asked for: when an OpenTelemetry API is
    installed, merely checking per request whether it is configured costs about a tenth of a worker's CPU."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": enabled, "metrics": enabled, "logs": enabled}}


def typed_openapi(app: FastAPI, plane: DataPlane) -> dict[str, Any]:
    """FastAPI's schema with each model's request bodies typed from its signature (built once models load)."""
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes,
                         description="Predictions from the models below; request bodies follow their signatures.")
    paths = schema["paths"]
    for name, slot in plane.slots.items():
        signature = slot.runner.signature
        operation = {"summary": f"Predict with {name}", "tags": ["simple"],
                     **openapi.simple_request(signature),
                     "responses": {**paths["/predict"]["post"]["responses"],
                                   "200": {"description": "Predictions", "content": {"application/json": {
                                       "schema": openapi.simple_response(signature)}}}}}
        paths[f"/models/{name}/predict"] = {"post": operation}
        if len(plane.slots) == 1:
            paths["/predict"] = {"post": {**operation, "summary": "Predict"}}
            paths["/invocations"]["post"].update(openapi.mlflow_request(signature))
    if plane.slots:  # the generic template is replaced by one typed path per model
        paths.pop("/models/{name}/predict", None)
    return schema


def log_startup(plane: DataPlane, settings: ServeSettings) -> None:
    lines = ["berth serving:"]
    for name, slot in plane.slots.items():
        manifest = slot.runner.model.manifest
        lines.append(f"  {name} version {slot.runner.version} ({manifest.flavor}/{manifest.format}) loaded in "
                     f"{slot.load_seconds:.2f} s")
    for source, problem in plane.problems.items():
        lines.append(f"  NOT SERVED {source}: {problem}")
    lines.append("  routes: POST /predict /models/{name}/predict /invocations /v2/models/{name}/infer; "
                 "GET /health/live /health/ready /ping /metrics /docs")
    batching = (f"batching up to {settings.max_batch_size} rows, {settings.max_batch_delay_ms:g} ms"
                if settings.batching else "batching off")
    lines.append(f"  {batching}; timeout {settings.timeout_s:g} s; auth {'on' if settings.api_keys else 'off'}")
    log.info("\n".join(lines))

