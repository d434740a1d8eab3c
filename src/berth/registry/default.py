"""The registry an entry point passes down when its caller named none.

``berth.load``, ``create_app``, ``build_context`` and the Ray Serve backend call :func:`registry_for` once; the
modules below them (``berth.source``, the data plane) are handed the registry and never pick one themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from berth.registry.uri import is_model_uri

if TYPE_CHECKING:
    from berth.registry.store import Registry


def registry_for(uris: Iterable[object], registry: Registry | None, url: str | None = None) -> Registry | None:
    """The registry to pass down for ``uris`` (URIs, or sources with ``uri`` and ``registry`` attributes, such as
    the server's ``ModelSource``).

    The one given; else, only if one of ``uris`` names a registered model and brings no registry of its own, the
    registry at ``url`` or, without one, the registry the environment names (``BERTH_REGISTRY_URL``); else None
    (and SQLAlchemy stays unimported).
    """
    if registry is not None:
        return registry
    if not any(is_model_uri(getattr(uri, "uri", uri)) and getattr(uri, "registry", None) is None for uri in uris):
        return None
    from berth.registry.store import default_registry

    return default_registry(url)
