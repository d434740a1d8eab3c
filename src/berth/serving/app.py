"""The ASGI application: composes the data plane, the route table (:mod:`berth.serving.handlers`), platform and
monitoring routes, OpenAPI and middleware."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from berth.errors import BerthError
from berth.registry.default import registry_for
from berth.serving import docs, grpc, monitor_routes, openapi, platforms
from berth.serving.dataplane import DataPlane, ModelSource
from berth.serving.fastpath import Endpoint, PredictionRoutes
from berth.serving.handlers import PREDICTION_ROUTES, PredictionRoute, Served
from berth.serving.metrics import Metrics
from berth.serving.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from berth.serving.recording import Recorder
from berth.serving.responses import error_response
from berth.serving.rollout import AliasFollower
from berth.serving.settings import ServeSettings
from berth.serving.shadow import ShadowDispatcher
from berth.version import version

if TYPE_CHECKING:
    from berth.registry.store import Registry

log = logging.getLogger("berth.serve")


def create_app(sources: Sequence[Any], settings: ServeSettings | None = None, *,
               registry: Registry | None = None, load_in_background: bool = True) -> FastAPI:
    """Build the server for ``sources`` (bundle URIs, ``LoadedModel`` objects or :class:`ModelSource`).

    ``models:/`` sources resolve in ``registry``; by default in the one ``settings.registry_url`` (or the
    environment) names, opened here only if a source needs it.
    """
    settings = settings or ServeSettings()
    metrics = Metrics()
    served_sources = [ModelSource.of(s) for s in sources]  # NAME=URI split here, before the registry is chosen
    plane = DataPlane(served_sources, settings, metrics,
                      registry=registry_for(served_sources, registry, settings.registry_url))
    follower = AliasFollower(plane, settings.poll_interval_s)
    recorder = Recorder(settings, metrics)  # prediction log, request ids, drift gauges (monitoring)
    shadows = ShadowDispatcher(settings, metrics, recorder)  # copies of answered requests to a shadow candidate

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.get_running_loop().run_in_executor(None, plane.load_all)
        loading.add_done_callback(lambda _: log_startup(plane, settings))
        loading.add_done_callback(lambda _: follower.start())  # slots started on models:/NAME@ALIAS
        if not load_in_background:
            await loading
        await recorder.start(plane)
        shadows.start()
        grpc_server = None
        if settings.grpc_port is not None:  # the Open Inference Protocol over gRPC, in this event loop
            grpc_server, app.state.grpc_port = await grpc.start(plane, metrics, recorder, settings)
        yield
        if grpc_server is not None:
            await grpc_server.stop(settings.graceful_timeout_s)
        await follower.stop()
        await shadows.stop()
        await plane.close()
        await recorder.stop()  # flushes the prediction log

    app = FastAPI(title="berth model server", version=version(), lifespan=lifespan,
                  docs_url=None, redoc_url=None, **telemetry_options(settings.telemetry))
    docs.install(app)  # Swagger UI from files shipped with berth, not a CDN
    app.state.plane = plane
    app.state.metrics = metrics
    app.state.recorder = recorder
    app.state.shadows = shadows
    served = Served(plane, metrics, recorder, version(), shadows)
    hot_routes = add_prediction_routes(app, served, PREDICTION_ROUTES, auth=bool(settings.api_keys))
    platforms.add_routes(app, settings, served)  # Azure's /score; Vertex AI's routes when configured
    monitor_routes.install(app, plane, recorder)  # POST /feedback, /dashboard
    for path, status_endpoint, tag in served.status_routes():
        app.add_api_route(path, status_endpoint, methods=["GET"], tags=[tag], **openapi.status_route(path))

    @app.exception_handler(BerthError)
    async def berth_error(request: Request, exc: BerthError) -> Response:
        return error_response(exc, v2=request.url.path.startswith(("/v2", "/v1/")))

    app.openapi = lambda: typed_openapi(app, plane)  # type: ignore[method-assign]
    app.add_middleware(PredictionRoutes, routes=hot_routes)  # innermost: inside the body limit and auth
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    if settings.api_keys:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys, protect_all=settings.auth_all,
                           protect_docs=settings.protect_docs, protect_metrics=settings.protect_metrics)
    return app


def add_prediction_routes(app: FastAPI, served: Served, table: Sequence[PredictionRoute], *,
                          auth: bool = False) -> list[tuple[str, Endpoint]]:
    """Register the rows of ``table`` with FastAPI; returns the ``POST`` routes for the fast path.

    Each route's OpenAPI entry lists its path parameters and the errors it answers (401 when keys are set).
    """
    hot: list[tuple[str, Endpoint]] = []
    for row in table:
        endpoint = served.endpoint(row.metric, row.handler, v2_errors=row.v2_errors, choose=row.method == "POST")
        codes = openapi.PREDICTION_ERRORS if row.method == "POST" else openapi.READ_ERRORS
        responses = openapi.error_responses(codes, v2=row.v2_errors, auth=auth)
        for path in row.paths:
            extra = {**(row.openapi_extra or {}), "parameters": openapi.path_parameters(path)}
            app.add_api_route(path, endpoint, methods=[row.method], tags=[row.tag], summary=row.summary,
                              openapi_extra=extra, responses=responses)
            if row.method == "POST":
                hot.append((path, endpoint))
    return hot


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
        typed = openapi.model_paths(name, slot.runner.signature, only_model=len(plane.slots) == 1)
        for path, item in typed.items():  # the errors each route answers, as registered for its template
            template = paths.get(path.replace(f"models/{name}", "models/{name}", 1), {}).get("post", {})
            item["post"]["responses"] = {**template.get("responses", {}), **item["post"]["responses"]}
            item["post"].setdefault("parameters", [p for p in template.get("parameters", [])
                                                   if p.get("in") != "path"])
        paths.update(typed)
    if plane.slots:  # the generic templates are replaced by one typed path per model
        for template in openapi.TEMPLATES:
            paths.pop(template, None)
    return schema


def log_startup(plane: DataPlane, settings: ServeSettings) -> None:
    lines = ["berth serving:"]
    for name, slot in plane.slots.items():
        manifest = slot.runner.model.manifest
        lines.append(f"  {name} version {slot.runner.version} ({manifest.flavor}/{manifest.format}) loaded in "
                     f"{slot.load_seconds:.2f} s; {slot.runner.model.runtime}")
        batcher = slot.runner.batcher
        lines.append(f"    {batcher.cost.describe(batcher.max_batch_size if settings.batching else 1)}")
    for source, problem in plane.problems.items():
        lines.append(f"  NOT SERVED {source}: {problem}")
    lines.append("  routes: POST /predict /invocations /models/{name}/predict /models/{name}/invocations "
                 "/v2/models/{name}/infer /v1/models/{name}:predict; GET /health/live /health/ready /ping /metrics "
                 "/docs" + (f"; gRPC on port {settings.grpc_port}" if settings.grpc_port is not None else ""))
    batching = (f"batching up to {settings.max_batch_size} rows, {settings.max_batch_delay_ms:g} ms"
                if settings.batching else "batching off")
    lines.append(f"  {batching}; timeout {settings.timeout_s:g} s; auth {'on' if settings.api_keys else 'off'}")
    log.info("\n".join(lines))

