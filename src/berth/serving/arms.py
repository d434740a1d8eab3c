"""Candidates beside the served version: a *canary* answers a share of the requests, a *shadow* is also sent a
share of them after they are answered (see docs/rollouts.md).

They come from ``berth serve --canary URI=PERCENT`` / ``--shadow URI[=FRACTION]`` (loaded with the baseline, at
start) or from the registry's rollout state of a followed alias (:mod:`berth.serving.rollout`). Either way a
candidate is loaded, verified and warmed up like any version, and refused (the baseline keeps serving alone, the
slot's ``problem`` says why) when it cannot be served or takes requests the baseline takes differently.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING

from berth.errors import BerthError, UsageError

if TYPE_CHECKING:
    from berth.registry.store import Registry
    from berth.serving.dataplane import DataPlane
    from berth.serving.slot import ModelSlot, Runner

log = logging.getLogger("berth.serve")


def parse_spec(text: str, kind: str) -> tuple[str, float]:
    """``URI=SHARE`` of ``--canary`` (a percentage, required) or ``--shadow`` (a fraction, default 1)."""
    uri, sep, tail = text.rpartition("=")
    share: float | None = None
    if sep:
        try:
            share = float(tail)
        except ValueError:
            uri, share = text, None  # the "=" belongs to the URI
    else:
        uri = text
    if not uri.strip():
        raise UsageError(f"--{kind} needs a model URI, e.g. models:/iris@candidate")
    if kind == "canary":
        if share is None:
            raise UsageError(f"--canary takes URI=PERCENT (e.g. models:/iris@candidate=10), not {text!r}")
        return uri, check_percent(share, "--canary")
    return uri, check_fraction(1.0 if share is None else share, "--shadow")


def check_percent(value: float, what: str) -> float:
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise UsageError(f"{what}: the canary's share is a percentage from 0 to 100, not {value:g}")
    return float(value)


def check_fraction(value: float, what: str) -> float:
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise UsageError(f"{what}: the shadow's share is a fraction from 0 to 1, not {value:g}")
    return float(value)


def load_candidate(plane: DataPlane, slot: ModelSlot, uri: str, registry: Registry | None) -> Runner:
    """Load, verify, check and warm up the candidate at ``uri`` for ``slot`` (in a worker thread)."""
    from berth.serving.dataplane import load_source, settle_heap, version_of
    from berth.serving.rollout import check_compatible
    from berth.serving.slot import start_runner

    started = time.perf_counter()
    model = load_source(uri, trust=plane.settings.trust, registry=registry, compiled=plane.settings.compiled)
    if model.name != slot.name and len(plane.slots) > 1:
        raise BerthError(f"the candidate {uri} is a model named {model.name!r}, not {slot.name!r}")
    if not plane.settings.allow_signature_change:
        check_compatible(slot.runner.signature, model.signature)
    runner = start_runner(slot.name, model, version_of(model), plane.settings, plane.metrics, started)
    settle_heap()
    return runner


def target_slot(plane: DataPlane, uri: str) -> ModelSlot | None:
    """The served model a candidate URI belongs to: the one slot, or the slot named like the registered model."""
    from berth.registry.uri import parse_model_uri

    if len(plane.slots) == 1:
        return next(iter(plane.slots.values()))
    parsed = parse_model_uri(uri)
    return plane.slots.get(parsed.name) if parsed is not None else None


def load_flag_arms(plane: DataPlane) -> None:
    """Attach the ``--canary`` and ``--shadow`` candidates of the settings (after the baselines loaded)."""
    from berth.serving.slot import Arm

    for kind in ("canary", "shadow"):
        spec = getattr(plane.settings, kind)
        if not spec:
            continue
        uri, share = parse_spec(spec, kind)
        slot = target_slot(plane, uri)
        if slot is None:
            plane.problems[f"--{kind} {uri}"] = "no served model to put it beside: name it like a served model"
            continue
        try:
            existing = next((r for r in slot.candidates() if getattr(r, "source", None) == uri), None)
            runner = existing or load_candidate(plane, slot, uri, plane.registry)
            runner.source = uri
        except Exception as exc:  # the baseline keeps serving alone; /health/ready says why
            reason = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
            slot.problem = f"the {kind} candidate {uri} cannot be served: {reason}; serving the baseline alone"
            log.error("%s", slot.problem)
            continue
        setattr(slot, kind, Arm(runner, share, uri))
        log.info("%s: %s %s (version %s) takes %s", slot.name, kind, uri, runner.version,
                 f"{share:g} % of the requests" if kind == "canary" else f"a copy of {share:.0%} of the requests")
