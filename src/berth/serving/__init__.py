"""The model server: ``serve`` to run it, ``create_app`` for your own ASGI server, ``ServeSettings``."""

from __future__ import annotations

import os
from typing import Any

from berth.serving.app import create_app
from berth.serving.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "serve"]


def serve(*sources: str | os.PathLike[str] | Any, **settings: Any) -> None:
    """Serve models until stopped: ``serve("out/iris", port=8000, workers=2)``.

    ``sources`` are bundle URIs (or ``LoadedModel`` objects with ``workers=1``); ``settings`` are the fields of
    :class:`ServeSettings`. Blocks; returns after SIGTERM / Ctrl-C and a graceful drain.
    """
    from berth.serving.server import run

    run(list(sources), ServeSettings(**settings))
