"""The model server: ``serve`` to run it, ``create_app`` for your own ASGI server, ``ServeSettings``.

``create_app`` (FastAPI, numpy, the prediction log) is imported on first use: a supervisor of several workers
imports this package but serves nothing itself, and starts its workers sooner without them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from berth.serving.settings import ServeSettings

if TYPE_CHECKING:
    from berth.serving.app import create_app

__all__ = ["ServeSettings", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name != "create_app":
        raise AttributeError(f"module 'berth.serving' has no attribute {name!r}")
    from berth.serving.app import create_app

    globals()["create_app"] = create_app
    return create_app


def serve(*sources: str | os.PathLike[str] | Any, backend: str = "local", replicas: int | None = None,
          autoscale: str | None = None, address: str | None = None, **settings: Any) -> None:
    """Serve models until stopped: ``serve("out/iris", port=8000, workers=2)``.

    ``sources`` are bundle URIs (or ``LoadedModel`` objects with ``workers=1``); ``settings`` are the fields of
    :class:`ServeSettings` (unset ones come from ``BERTH_*`` variables). ``backend="ray"`` (with ``replicas``,
    ``autoscale="MIN:MAX"``, ``address``) serves Ray Serve replicas instead of worker processes. It decides
    exactly as ``berth serve`` does (:mod:`berth.serving.launch`): invalid settings raise
    :class:`~berth.errors.UsageError`. Blocks; returns after SIGTERM / Ctrl-C and a graceful drain.
    """
    from berth.serving.launch import RayRequest, launch

    launch(sources, settings, ray=RayRequest(backend, replicas, autoscale, address))
