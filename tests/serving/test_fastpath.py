"""The prediction routes' ASGI fast path: it answers exactly what FastAPI's router answers, and lets every
other request through to FastAPI."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from berth.serving.fastpath import PredictionRoutes
from tests.serving.conftest import ROW, make_client


async def answer(request: Request) -> Response:
    return PlainTextResponse(f"fast {request.path_params}")


async def router(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    await PlainTextResponse("router")(scope, receive, send)


def test_matches_exact_and_parameterised_paths_only() -> None:
    routes = PredictionRoutes(router, [("/predict", answer), ("/v2/models/{name}/versions/{version}/infer", answer)])
    assert routes.match("/predict") == (answer, {})
    assert routes.match("/v2/models/iris/versions/3/infer") == (answer, {"name": "iris", "version": "3"})
    assert routes.match("/predict/extra") is None
    assert routes.match("/v2/models/iris/infer") is None


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/predict", "fast {}"),
    ("POST", "/models/iris/predict", "fast {'name': 'iris'}"),
    ("GET", "/predict", "router"),       # only POST is dispatched
    ("POST", "/elsewhere", "router"),
])
def test_dispatches_post_to_known_paths_and_passes_the_rest(method: str, path: str, body: str) -> None:
    from starlette.testclient import TestClient

    app = PredictionRoutes(router, [("/predict", answer), ("/models/{name}/predict", answer)])
    assert TestClient(app).request(method, path).text == body


def test_served_app_answers_the_same_through_the_router(iris_bundle: Path) -> None:
    """The routes are registered with FastAPI as well: calling its router directly gives the same response."""
    with make_client([iris_bundle]) as client:
        fast = client.post("/predict", json={"features": ROW, "probabilities": True})
        bad_fast = client.post("/predict", json={"features": [1, 2]})
        fastapi_router = client.app.router  # type: ignore[attr-defined]

        async def through_router(body: dict[str, object]) -> httpx.Response:
            transport = httpx.ASGITransport(app=AsyncExitStackMiddleware(fastapi_router))
            async with httpx.AsyncClient(transport=transport, base_url="http://berth") as direct:
                return await direct.post("/predict", json=body)

        assert client.portal is not None  # the loop the models' batchers live on
        slow = client.portal.call(through_router, {"features": ROW, "probabilities": True})
        bad_slow = client.portal.call(through_router, {"features": [1, 2]})
    assert fast.status_code == slow.status_code == 200
    assert fast.json() == slow.json()
    assert bad_fast.status_code == bad_slow.status_code == 422
    assert bad_fast.json() == bad_slow.json()
    assert fast.headers["x-berth-model-version"] == slow.headers["x-berth-model-version"]
