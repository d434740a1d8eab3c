"""Everything ``berth serve`` and :func:`berth.serve` decide before a server starts, decided once, here.

Both callers hand over what they were given: the sources and the settings that were set (``None`` means "not
given": the ``BERTH_*`` environment, then the default, applies). :func:`plan` then

1. builds :class:`ServeSettings` from them, turning pydantic's validation errors into a :class:`UsageError` that
   names each setting;
2. drops SageMaker's ``serve`` start argument (the container is started as ``docker run IMAGE serve``);
3. refuses a local path that does not exist, and a served name (``NAME=URI``) given twice or breaking the
   model-name rule, before any model is loaded or port bound;
4. applies the cloud platform's variables (``berth.serving.platform_settings``): a port given explicitly wins over them;
5. chooses the backend: berth's own worker processes, or Ray Serve replicas.

:func:`launch` runs the plan. The CLI only parses options and calls :func:`launch`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from berth.errors import UsageError
from berth.registry.uri import is_model_uri
from berth.serving import platform_settings
from berth.serving.naming import split_named
from berth.serving.settings import ServeSettings

if TYPE_CHECKING:
    from berth.serving.ray_serve import RayServeOptions

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class RayRequest:
    """What was asked of the Ray backend, checked by :func:`berth.serving.ray_serve.options_from_cli`."""

    backend: str = "local"
    replicas: int | None = None
    autoscale: str | None = None
    address: str | None = None

    @property
    def wanted(self) -> bool:
        return self.backend != "local" or any(v is not None for v in (self.replicas, self.autoscale, self.address))


@dataclass(frozen=True)
class Plan:
    """A checked launch: the sources to serve, the final settings, and Ray's options when Ray serves them."""

    sources: list[Any]
    settings: ServeSettings
    ray: RayServeOptions | None = None


def build_settings(given: Mapping[str, Any]) -> ServeSettings:
    """:class:`ServeSettings` from the settings that were given (``None`` values are left to the environment)."""
    unknown = sorted(set(given) - set(ServeSettings.model_fields))
    if unknown:
        raise UsageError(f"unknown server setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}; "
                         f"the settings are: {', '.join(ServeSettings.model_fields)}")
    try:
        return ServeSettings(**{key: value for key, value in given.items() if value is not None})
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors()]
        raise UsageError("invalid server settings: " + "; ".join(problems)) from None


def check_arms(settings: ServeSettings) -> None:
    """Refuse a malformed ``--canary`` / ``--shadow`` before anything loads."""
    from berth.serving.arms import parse_spec

    for kind in ("canary", "shadow"):
        if getattr(settings, kind):
            parse_spec(getattr(settings, kind), kind)


def missing_paths(sources: Sequence[Any]) -> list[str]:
    """The sources that name a local path that does not exist (URLs and ``models:/`` URIs are not checked)."""
    uris = [split_named(source)[1] if isinstance(source, str) else str(source) for source in sources
            if isinstance(source, str | os.PathLike)]
    return [uri for uri in uris if not is_model_uri(uri) and "://" not in uri and not os.path.exists(uri)]


def plan(sources: Sequence[Any], settings: Mapping[str, Any] | None = None, *, ray: RayRequest | None = None,
         environ: Mapping[str, str] | None = None) -> Plan:
    """Check a launch without starting anything; see the module's docstring for the steps."""
    given = {key: value for key, value in (settings or {}).items() if value is not None}
    built = build_settings(given)
    check_arms(built)
    texts = [str(s) if isinstance(s, os.PathLike) else s for s in sources]
    if all(isinstance(s, str) for s in texts):
        texts, started = platform_settings.split_start_argument(texts)
    else:
        started = False
    if not texts:
        raise UsageError("nothing to serve: give at least one bundle, file or model URI")
    named = [name for name, _ in (split_named(t) for t in texts if isinstance(t, str)) if name is not None]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise UsageError(f"two models are named {', '.join(twice)}: give each served model its own NAME=")
    missing = missing_paths(texts)
    if missing:
        raise UsageError(f"nothing to serve at {', '.join(missing)}: no such file or directory")
    built = platform_settings.resolve(built, environ, given=set(given), started=started)
    ray = ray or RayRequest()
    if ray.backend not in BACKENDS:
        raise UsageError(f"--backend is {' or '.join(BACKENDS)}, not {ray.backend!r}")
    if not ray.wanted:
        return Plan(texts, built)
    if built.grpc_port is not None:
        raise UsageError("--grpc-port serves gRPC from berth's own workers; with --backend ray, Ray Serve's proxy "
                         "owns the ports (use --backend local for the Open Inference Protocol over gRPC)")
    from berth.serving.ray_serve import options_from_cli

    options = options_from_cli(ray.backend, ray.replicas, ray.autoscale, ray.address, given.get("workers"))
    if not all(isinstance(s, str) for s in texts):
        raise UsageError("Ray Serve replicas load their own copies: give model URIs, not loaded models")
    return Plan(texts, built, options)


def launch(sources: Sequence[Any], settings: Mapping[str, Any] | None = None, *, ray: RayRequest | None = None,
           environ: Mapping[str, str] | None = None) -> None:
    """Serve until stopped (SIGTERM / Ctrl-C, then a graceful drain), as :func:`plan` decided."""
    checked = plan(sources, settings, ray=ray, environ=environ)
    if checked.ray is not None:
        from berth.serving import ray_serve

        ray_serve.run(checked.sources, checked.settings, checked.ray)
        return
    from berth.serving.server import run

    run(checked.sources, checked.settings)
