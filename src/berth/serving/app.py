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
from berth.serving import docs, grpc, monitor_routes, openapi, platforms
from berth.serving.codec import decode_json
from berth.serving.dataplane import DataPlane, ModelSource
from berth.serving.fastpath import PredictionRoutes
from berth.serving.metrics import Metrics
from berth.serving.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from berth.serving.protocols import binary, kserve_v1, mlflow, sagemaker, simple, v2
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
        grpc_server = None
        if settings.grpc_port is not None:  # the Open Inference Protocol over gRPC, in this event loop
            grpc_server, app.state.grpc_port = await grpc.start(plane, metrics, recorder, settings)
        yield
        if grpc_server is not None:
            await grpc_server.stop(settings.graceful_timeout_s)
        await follower.stop()
        await plane.close()
        await recorder.stop()  # flushes the prediction log

    app = FastAPI(title="berth model server", version=berth.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, **telemetry_options(settings.telemetry))
    docs.install(app)  # Swagger UI from files shipped with berth, not a CDN
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
                model, version, headers = name or "", "", {"x-request-id": request_id}
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
                    if isinstance(payload, Response):  # a protocol's own body (binary tensors, CSV)
                        payload.headers.update(headers)
                        response = payload
                    else:
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
        answer = sagemaker.answer_format(request.headers.get("accept"))  # 406 before any work
        runner = slot.runner
        key, data = mlflow.decode(await request.body(), request.headers.get("content-type"), runner.signature)
        try:
            result = await plane.predict(runner, data)
        except SignatureError as exc:
            raise mlflow.located(exc, key) from None
        request.state.prediction = (runner, data, result)  # for the prediction log
        return (mlflow.encode(result) if answer == "json" else sagemaker.encode(result.predictions, answer)), 200

    @served("/v2/infer", v2_errors=True)
    async def infer(slot: SlotView, request: Request) -> tuple[Any, int]:
        runner = slot.runner
        call = v2.read(await request.body(), request.headers.get("content-type"),
                       request.headers.get(binary.HEADER), runner.signature)
        result = await plane.predict(runner, call.data, call.probabilities)
        request.state.prediction = (runner, call.data, result)  # for the prediction log
        return v2.respond(result, call, slot.name, runner.version), 200

    @served("/v2/metadata", v2_errors=True)
    async def model_metadata(slot: SlotView, request: Request) -> tuple[Any, int]:
        runner = slot.runner
        return v2.metadata(runner.signature, slot.name, runner.version, runner.model.manifest.flavor), 200

    @served("/v2/ready", v2_errors=True)
    async def model_ready(slot: SlotView, request: Request) -> tuple[Any, int]:
        return {"name": slot.name, "ready": slot.ready}, 200 if slot.ready else 503

    hot_routes = []  # also dispatched by PredictionRoutes, ahead of FastAPI's router
    for path in ("/predict", "/models/{name}/predict"):
        app.add_api_route(path, predict, methods=["POST"], tags=["simple"], summary="Predict",
                          openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}}})
        hot_routes.append((path, predict))
    for path in ("/invocations", "/models/{name}/invocations"):
        app.add_api_route(path, invocations, methods=["POST"], tags=["mlflow"], summary="MLflow / SageMaker scoring")
        hot_routes.append((path, invocations))
    hot_routes.extend(kserve_v1.add_routes(app, served))  # KServe V1: /v1/models/NAME[:predict]
    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        app.add_api_route(prefix, model_metadata, methods=["GET"], tags=["v2"], summary="Model metadata")
        app.add_api_route(prefix + "/ready", model_ready, methods=["GET"], tags=["v2"], summary="Model ready")
        app.add_api_route(prefix + "/infer", infer, methods=["POST"], tags=["v2"], summary="Inference")
        hot_routes.append((prefix + "/infer", infer))
    platforms.add_routes(app, settings, served)  # Azure's /score; Vertex AI's routes when configured
    monitor_routes.install(app, plane, recorder)  # POST /feedback, /dashboard

    @app.get("/health/live", tags=["health"])
    async def live() -> Response:
        return json_response({"live": True})

    @app.get("/health/ready", tags=["health"])
    async def ready() -> Response:
        return json_response(plane.readiness(), 200 if plane.ready else 503)

    @app.get("/ping", tags=["mlflow"])
    async def ping() -> Response:
        return json_response({"status": "ok" if plane.ready else "loading"}, 200 if plane.ready else 503)

    @app.get("/v2", tags=["v2"])
    async def server_metadata() -> Response:
        return json_response({"name": "berth", "version": berth.__version__, "extensions": v2.EXTENSIONS})

    @app.get("/v2/health/live", tags=["v2"])
    async def v2_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["v2"])
    async def v2_ready() -> Response:
        return json_response({"ready": plane.ready}, 200 if plane.ready else 503)

    @app.get("/metrics", tags=["health"])
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.exception_handler(BerthError)
    async def berth_error(request: Request, exc: BerthError) -> Response:
        return error_response(exc, v2=request.url.path.startswith(("/v2", "/v1/")))

    app.openapi = lambda: typed_openapi(app, plane)  # type: ignore[method-assign]
    app.add_middleware(PredictionRoutes, routes=hot_routes)  # innermost: inside the body limit and auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys, protect_all=settings.auth_all)
    return app


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
        paths.update(openapi.model_paths(name, slot.runner.signature, only_model=len(plane.slots) == 1))
    if plane.slots:  # the generic templates are replaced by one typed path per model
        for template in openapi.TEMPLATES:
            paths.pop(template, None)
    return schema


def log_startup(plane: DataPlane, settings: ServeSettings) -> None:
    lines = ["berth serving:"]
    for name, slot in plane.slots.items():
        manifest = slot.runner.model.manifest
        lines.append(f"  {name} version {slot.runner.version} ({manifest.flavor}/{manifest.format}) loaded in "
                     f"{slot.load_seconds:.2f} s")
    for source, problem in plane.problems.items():
        lines.append(f"  NOT SERVED {source}: {problem}")
    lines.append("  routes: POST /predict /invocations /models/{name}/predict /models/{name}/invocations "
                 "/v2/models/{name}/infer /v1/models/{name}:predict; GET /health/live /health/ready /ping /metrics "
                 "/docs" + (f"; gRPC on port {settings.grpc_port}" if settings.grpc_port is not None else ""))
    batching = (f"batching up to {settings.max_batch_size} rows, {settings.max_batch_delay_ms:g} ms"
                if settings.batching else "batching off")
    lines.append(f"  {batching}; timeout {settings.timeout_s:g} s; auth {'on' if settings.api_keys else 'off'}")
    log.info("\n".join(lines))

