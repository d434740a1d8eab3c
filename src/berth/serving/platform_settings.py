"""What a cloud platform's variables change in the server's settings, decided before anything is served.

The platforms and their contracts are described in :mod:`berth.serving.platforms`, which adds their routes to the
app. This half is what :mod:`berth.serving.launch` needs: it imports no web framework, so a supervisor of
several workers decides its settings without importing what only the workers use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from berth.contracts import (
    MODEL_DIR,
    PLATFORM_PORT,
    SAGEMAKER_PORT_ENV,
    START_ARGUMENT,
    VERTEX_ENV,
    VERTEX_FALLBACK_ROUTES,
    VERTEX_HEALTH_ROUTE_ENV,
    VERTEX_PORT_ENV,
    VERTEX_PREDICT_ROUTE_ENV,
)
from berth.errors import UsageError
from berth.serving.settings import ServeSettings


def split_start_argument(uris: Sequence[str]) -> tuple[list[str], bool]:
    """Drop SageMaker's ``serve`` start argument from the URIs; without another URI, serve ``/opt/ml/model``.

    A bare ``serve`` is the start argument unless a file or directory by that name exists.
    """
    kept = [uri for uri in uris if uri != START_ARGUMENT or os.path.exists(uri)]
    started = len(kept) != len(uris)
    if started and not kept:
        kept = [MODEL_DIR]
    return kept, started


def _port(environ: Mapping[str, str], variable: str) -> int | None:
    value = environ.get(variable, "").strip()
    if not value:
        return None
    if not value.isdigit() or not 0 < int(value) <= 65535:
        raise UsageError(f"{variable}={value!r} is not a TCP port")
    return int(value)


def detect(environ: Mapping[str, str], started: bool) -> str:
    if any(key in environ for key in VERTEX_ENV):
        return "vertex"
    if started or SAGEMAKER_PORT_ENV in environ:
        return "sagemaker"
    return ""


def resolve(settings: ServeSettings, environ: Mapping[str, str] | None = None, *, given: set[str] | None = None,
            started: bool = False) -> ServeSettings:
    """The settings with the platform's variables applied; ``given`` are the settings set on the command line."""
    environ = os.environ if environ is None else environ
    given = given or set()
    platform = settings.platform or detect(environ, started)
    update: dict[str, Any] = {"platform": platform}
    port: int | None = None
    if platform == "sagemaker":
        port = _port(environ, SAGEMAKER_PORT_ENV) or (PLATFORM_PORT if started else None)
    elif platform == "vertex":
        port = _port(environ, VERTEX_PORT_ENV) or PLATFORM_PORT
        update["predict_route"] = environ.get(VERTEX_PREDICT_ROUTE_ENV) or settings.predict_route or \
            VERTEX_FALLBACK_ROUTES[0]
        update["health_route"] = environ.get(VERTEX_HEALTH_ROUTE_ENV) or settings.health_route or \
            VERTEX_FALLBACK_ROUTES[1]
    if port is not None and "port" not in given:
        update["port"] = port
    return settings.model_copy(update=update)
