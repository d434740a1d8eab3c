"""Pure ASGI dispatch of the prediction routes, in front of FastAPI's router.

The prediction endpoints take a bare ``Request``, render their own errors and declare no dependencies, yet
FastAPI still runs its exception middleware, exit stack, route matching over every route and dependency
solving (which parses the query string) for each call: about a quarter of a worker's CPU at c=64 on the iris
LogisticRegression (py-spy, see bench/results/serving.md). This layer matches the few hot ``POST`` paths with
Starlette's own path compiler and calls the same endpoint functions directly; everything else, and every path
it does not know, falls through to FastAPI unchanged. The routes stay registered with FastAPI too, so
``/openapi.json`` and ``/docs`` describe them and a request that reaches the router is answered the same way.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]


class PredictionRoutes:
    def __init__(self, app: ASGIApp, routes: Sequence[tuple[str, Endpoint]]) -> None:
        self.app = app
        self.exact: dict[str, Endpoint] = {}
        self.patterns: list[tuple[re.Pattern[str], dict[str, Convertor[Any]], Endpoint]] = []
        for path, endpoint in routes:
            regex, _, convertors = compile_path(path)
            if convertors:
                self.patterns.append((regex, convertors, endpoint))
            else:
                self.exact[path] = endpoint

    def match(self, path: str) -> tuple[Endpoint, dict[str, object]] | None:
        endpoint = self.exact.get(path)
        if endpoint is not None:
            return endpoint, {}
        for regex, convertors, endpoint in self.patterns:
            found = regex.match(path)
            if found:
                return endpoint, {key: convertors[key].convert(value)
                                  for key, value in found.groupdict().items()}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root):]
            found = self.match(path)
            if found is not None:
                endpoint, params = found
                scope["path_params"] = params
                response = await endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
