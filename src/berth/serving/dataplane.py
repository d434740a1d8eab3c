"""The transport-free core of a server: which models are served, whether they are ready, and predicting.

Routes (REST today) are thin wrappers around this. Models load in a background thread after start-up, so the
liveness probe answers at once and readiness turns true only when every model is loaded and warmed up.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from berth.errors import BerthError, ModelNotFoundError, NotReadyError, RequestTimeoutError
from berth.importer import open_model
from berth.model import LoadedModel, load_bundle
from berth.registry.uri import is_model_uri
from berth.serving.metrics import Metrics
from berth.serving.naming import split_named
from berth.serving.settings import ServeSettings
from berth.serving.slot import ModelSlot, Prediction, Runner
from berth.serving.supervision import PoolStatus

if TYPE_CHECKING:
    from berth.registry.store import Registry

log = logging.getLogger("berth.serve")


@dataclass(frozen=True)
class ModelSource:
    """Where a served model comes from: a URI to load, or a model already loaded (from Python); ``registry`` for
    a ``models:/`` URI resolved elsewhere than in the server's registry."""

    uri: str | None = None
    model: LoadedModel | None = None
    name: str | None = None
    registry: Registry | None = None

    @classmethod
    def of(cls, value: str | os.PathLike[str] | LoadedModel | ModelSource) -> ModelSource:
        if isinstance(value, ModelSource):
            return value
        if isinstance(value, LoadedModel):
            return cls(model=value)
        if isinstance(value, str):
            name, uri = split_named(value)  # NAME=URI names the served model
            return cls(uri=uri, name=name)
        return cls(uri=str(value))

    def describe(self) -> str:
        return self.uri or (self.model.source if self.model else "?")


def load_source(uri: str, *, trust: bool, registry: Registry | None = None, compiled: bool = True) -> LoadedModel:
    """Load a bundle (or a ``models:/`` URI, from ``registry``), or import a plain model file into a temporary
    bundle first (pickle needs ``trust``); ``compiled``: predict with its compiled twin when it has one."""
    with open_model(uri, registry=registry, trust=trust) as bundle:
        return load_bundle(bundle, trust=trust, compiled=compiled)


def version_of(model: LoadedModel) -> str:
    """The served version: the registry's number when there is one, else a short content digest."""
    entry = getattr(model, "registry", None)  # set by load() for models:/ URIs
    if entry is not None:
        return str(entry.version)
    registered = model.manifest.metadata.get("registry_version") if model.manifest.metadata else None
    return str(registered) if registered is not None else model.manifest.content_digest.split(":")[1][:12]


def followed_alias(uri: str | None) -> Any:
    """The parsed ``models:/NAME@ALIAS`` a source follows, or None (a path, a fixed version, latest)."""
    from berth.registry.uri import parse_model_uri

    parsed = parse_model_uri(uri) if uri else None
    return parsed if parsed is not None and parsed.alias is not None else None


def slot_state(slot: ModelSlot) -> dict[str, Any]:
    state: dict[str, Any] = {"ready": slot.ready, "version": slot.runner.version}
    if slot.follows is not None:
        state["follows"] = str(slot.follows)
    if slot.canary is not None:
        state["canary"] = {"version": slot.canary.runner.version, "percent": slot.canary.share,
                           "source": slot.canary.source}
    if slot.shadow is not None:
        state["shadow"] = {"version": slot.shadow.runner.version, "share": slot.shadow.share,
                           "source": slot.shadow.source}
    problems = [p for p in (slot.problem, slot.rollout_problem) if p]
    if problems:
        state["problem"] = "; ".join(problems)
    return state


def settle_heap() -> None:
    """Move everything loaded so far (libraries, models) out of the cyclic garbage collector's sight.

    A worker that has imported scikit-learn, pandas and a model holds millions of objects; each full collection
    walks all of them and stalls the event loop for ~200 ms, which showed as a p99 of 200 ms at c=64 while the
    median was 13 ms. Frozen objects are still freed by reference counting; only cycles among them are not.
    """
    gc.collect()
    gc.freeze()


class DataPlane:
    """The served models. ``registry`` resolves ``models:/`` sources (and the aliases they follow) unless a
    source names its own; the entry point (``create_app``) chooses it, nothing here falls back to a default."""

    def __init__(self, sources: Sequence[ModelSource], settings: ServeSettings, metrics: Metrics, *,
                 registry: Registry | None = None) -> None:
        self.sources = list(sources)
        self.settings = settings
        self.metrics = metrics
        self.registry = registry
        self.registries: dict[str, Registry] = {}  # slot name -> the registry its followed alias lives in
        self.slots: dict[str, ModelSlot] = {}
        self.problems: dict[str, str] = {}
        self.loading_done = False
        # Called (from the loading thread) when a local source cannot be served: a path or file either loads
        # or never will, so the server stops and says why. A models:/ URI can fail for a while (the registry
        # or its storage is down): that is a not-ready server, not a fatal one.
        self.on_fatal: Callable[[str], None] | None = None
        self.pool: PoolStatus | None = None  # set in a supervised worker: the state of its sibling workers

    # ------------------------------------------------------------------ loading

    def load_all(self) -> None:
        """Load, verify and warm every model (in a worker thread); record why one failed."""
        for source in self.sources:
            started = time.perf_counter()
            try:
                registry = source.registry or self.registry
                model = source.model or load_source(source.uri or "", trust=self.settings.trust, registry=registry,
                                                          compiled=self.settings.compiled)
                name = source.name or model.name
                if name in self.slots:
                    raise BerthError(f"two models are named {name!r}; name them on the command line: "
                                     "berth serve NAME=URI NAME2=URI2")
                self.slots[name] = ModelSlot.load(name, model, version_of(model), self.settings, self.metrics,
                                                  started)
                self.slots[name].follows = followed_alias(source.uri)
                if self.slots[name].follows is not None and registry is not None:
                    self.registries[name] = registry
            except Exception as exc:  # any failure is reported by /health/ready, the server stays up
                message = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
                self.problems[source.describe()] = message
                log.error("cannot serve %s: %s", source.describe(), message)
        if self.slots:
            from berth.serving.arms import load_flag_arms

            load_flag_arms(self)
        settle_heap()
        self.loading_done = True
        fatal = self.fatal_problems()
        if fatal and self.on_fatal is not None:
            self.on_fatal(fatal)

    def fatal_problems(self) -> str:
        """Why local sources (paths, files: not models:/ URIs) could not be loaded; empty when all were."""
        local = [s.describe() for s in self.sources if s.model is None and not is_model_uri(s.uri or "")]
        return "; ".join(f"cannot serve {uri}: {self.problems[uri]}" for uri in local if uri in self.problems)

    def registry_of(self, name: str) -> Registry:
        """The registry the slot ``name`` follows its alias in."""
        registry = self.registries.get(name)
        if registry is None:
            raise BerthError(f"{name!r} follows no registry alias")
        return registry

    @property
    def models_ready(self) -> bool:
        """This process serves every model."""
        return self.loading_done and not self.problems and all(s.ready for s in self.slots.values())

    @property
    def ready(self) -> bool:
        """This process serves every model, and so does every sibling worker (see serving/supervision.py)."""
        return self.models_ready and (self.pool is None or self.pool.all_ready) and not self.stuck

    @property
    def stuck(self) -> bool:
        """A predict call has outlived every request that could wait for it (``timeout_s``) by a margin."""
        return self.stuck_for() > self.settings.timeout_s + self.settings.heartbeat_timeout_s

    def stuck_for(self) -> float:
        """How long the longest predict call now running has been running."""
        return max((slot.runner.batcher.busy_for for slot in list(self.slots.values())), default=0.0)

    def readiness(self) -> dict[str, Any]:
        state = {
            "ready": self.ready,
            "models": {name: slot_state(slot) for name, slot in self.slots.items()},
            "problems": self.problems,
            "loading": not self.loading_done,
        }
        if self.pool is not None:
            state["workers"] = self.pool.state()
        if self.stuck:
            state["stuck_predict_s"] = round(self.stuck_for(), 1)
        return state

    # ------------------------------------------------------------------ predicting

    def slot(self, name: str | None) -> ModelSlot:
        if not self.loading_done:
            raise NotReadyError("models are still loading; retry shortly (see /health/ready)")
        if name is None:
            if len(self.slots) == 1:
                return next(iter(self.slots.values()))
            raise ModelNotFoundError(
                f"this server holds {len(self.slots)} models; name one in the route (/models/NAME/predict, "
                "/models/NAME/invocations, /v2/models/NAME/infer, /v1/models/NAME:predict): "
                + ", ".join(sorted(self.slots)))
        slot = self.slots.get(name)
        if slot is None:
            raise ModelNotFoundError(f"no model named {name!r}; served: {', '.join(sorted(self.slots)) or 'none'}",
                                     [{"loc": ["path", "model"], "msg": f"unknown model {name!r}"}])
        return slot

    async def predict(self, runner: Runner, data: Any, probabilities: bool = False) -> Prediction:
        gauge = runner.queue_gauge
        gauge.inc()
        try:
            async with asyncio.timeout(self.settings.timeout_s):  # no task of its own, unlike wait_for on 3.11
                return await runner.predict(data, probabilities)
        except TimeoutError:
            raise RequestTimeoutError(f"no answer within {self.settings.timeout_s:g} s (--timeout-s)") from None
        finally:
            gauge.dec()

    async def close(self) -> None:
        for slot in self.slots.values():
            for runner in [slot.runner, *slot.candidates()]:
                await runner.close()
