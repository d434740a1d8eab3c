"""Live rollout: a server started on ``models:/NAME@ALIAS`` follows the alias with zero downtime.

Every ``poll_interval_s`` each worker asks the registry where the alias points (one indexed query). When it has
moved, the new version is downloaded, verified against its digest, loaded and warmed up in a thread while the
old one keeps answering; then the slot's runner is swapped in one assignment. Requests already in flight
finish on the runner they were pinned to (see :class:`berth.serving.slot.SlotView`); the old runner closes
once none is left. A version that cannot be served (corrupt, refused by the safety checks, a different input
signature) is not swapped in: the old version keeps serving, ``/health/ready`` names the problem under the
model, ``berth_model_swaps_total{outcome="failed"}`` counts it, and the log says why. The failed version is
tried again only after ``RETRY_POLLS`` polls or once the alias moves elsewhere.

The same poll reads the registry's *rollout* beside the alias (``berth rollout set``): a candidate version with a
canary share and a shadow share. A new candidate is loaded and checked the same way, in a thread, and attached to
the slot in one assignment per arm; a changed share is applied in place (no reload); a cleared rollout detaches
the candidate, which closes once its requests and shadow calls are done. A candidate that cannot be served is
refused the same way (the slot's ``problem`` in ``/health/ready``, retried after ``RETRY_POLLS`` polls). When
the alias moves to the candidate's version (a promotion), the loaded candidate runner is reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from berth.errors import BerthError, SignatureError
from berth.signature import Signature

if TYPE_CHECKING:
    from berth.registry.records import ModelVersion, Rollout
    from berth.serving.dataplane import DataPlane
    from berth.serving.slot import ModelSlot, Runner

log = logging.getLogger("berth.serve")
RETRY_POLLS = 10


@dataclass
class _Failure:
    version: int
    polls_left: int


class AliasFollower:
    """Keeps every slot that follows an alias on the version the alias points at."""

    def __init__(self, plane: DataPlane, interval_s: float) -> None:
        self.plane = plane
        self.interval_s = interval_s
        self.failures: dict[str, _Failure] = {}
        self.rollout_failures: dict[str, _Failure] = {}
        self._task: asyncio.Task[None] | None = None
        self.retiring: set[asyncio.Task[None]] = set()  # old runners closing once their requests are answered

    @property
    def following(self) -> list[ModelSlot]:
        return [slot for slot in self.plane.slots.values() if slot.follows is not None]

    def start(self) -> None:
        if self.following and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="berth-alias-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.retiring:
            await asyncio.gather(*self.retiring, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            for slot in self.following:
                try:
                    await self.check(slot)
                except Exception as exc:  # a registry outage must not end the follower: it retries next poll
                    slot.problem = (f"cannot check {slot.follows} in the registry ({type(exc).__name__}: {exc}); "
                                    f"still serving version {slot.runner.version}")
                    log.warning("%s", slot.problem)

    async def check(self, slot: ModelSlot) -> bool:
        """Swap ``slot`` to the alias's version if it moved, and apply the rollout beside the alias; True when
        the served version changed."""
        loop = asyncio.get_running_loop()
        follows = slot.follows
        registry = self.plane.registry_of(slot.name)
        target, rollout = await loop.run_in_executor(None, registry.follow_state, follows.name, follows.alias)
        if target is None:
            slot.problem = f"alias {follows} no longer exists; still serving version {slot.runner.version}"
            return False
        swapped = await self._follow_alias(slot, target)
        if not self.plane.settings.canary and not self.plane.settings.shadow:  # serve options fix the arms
            await self.apply_rollout(slot, rollout)
        return swapped

    async def _follow_alias(self, slot: ModelSlot, target: ModelVersion) -> bool:
        loop = asyncio.get_running_loop()
        follows = slot.follows
        if str(target.version) == slot.runner.version:
            slot.problem = None
            self.failures.pop(slot.name, None)
            return False
        failure = self.failures.get(slot.name)
        if failure is not None and failure.version == target.version and failure.polls_left > 0:
            failure.polls_left -= 1
            return False
        reused = next((r for r in slot.candidates() if r.version == str(target.version)), None)
        try:
            runner = reused if reused is not None else await loop.run_in_executor(None, self._prepare, slot,
                                                                                    target)
        except Exception as exc:
            reason = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
            self.failures[slot.name] = _Failure(target.version, RETRY_POLLS)
            slot.problem = (f"{follows} moved to version {target.version}, which cannot be served: {reason}; "
                            f"still serving version {slot.runner.version}")
            self.plane.metrics.model_swaps.labels(slot.name, str(target.version), "failed").inc()
            log.error("not swapping %s to version %s: %s", slot.name, target.version, reason)
            return False
        old = slot.swap(runner)
        slot.problem = None
        self.failures.pop(slot.name, None)
        self.plane.metrics.model_swaps.labels(slot.name, runner.version, "ok").inc()
        log.info("%s now serves version %s (was %s), following %s", slot.name, runner.version, old.version, follows)
        if reused is not None:  # the candidate became the baseline: it is no longer beside itself
            self._detach(slot, keep=runner)
        if all(old is not r for r in slot.candidates()):
            self._retire(old)
        return True

    async def apply_rollout(self, slot: ModelSlot, rollout: Rollout | None) -> None:
        """Make the slot's canary and shadow what the registry's rollout says (None: no candidate)."""
        from berth.serving.arms import load_candidate
        from berth.serving.slot import Arm

        if rollout is None or str(rollout.candidate) == slot.runner.version:
            self.rollout_failures.pop(slot.name, None)
            slot.rollout_problem = None
            if slot.candidates():
                log.info("%s: rollout ended; serving version %s alone", slot.name, slot.runner.version)
            self._detach(slot)
            return
        wanted = str(rollout.candidate)
        runner = next((r for r in slot.candidates() if r.version == wanted), None)
        if runner is None:
            failure = self.rollout_failures.get(slot.name)
            if failure is not None and failure.version == rollout.candidate and failure.polls_left > 0:
                failure.polls_left -= 1
                return
            uri = f"models:/{slot.name}/{wanted}"
            try:
                runner = await asyncio.get_running_loop().run_in_executor(
                    None, load_candidate, self.plane, slot, uri, self.plane.registry_of(slot.name))
            except Exception as exc:
                reason = exc.message if isinstance(exc, BerthError) else f"{type(exc).__name__}: {exc}"
                self.rollout_failures[slot.name] = _Failure(rollout.candidate, RETRY_POLLS)
                slot.rollout_problem = (f"the rollout's candidate version {wanted} cannot be served: {reason}; "
                                        f"serving version {slot.runner.version} alone")
                self._detach(slot)
                log.error("%s", slot.rollout_problem)
                return
            runner.source = "registry"
            log.info("%s: rollout candidate version %s loaded (%s)", slot.name, wanted, rollout.describe())
        self.rollout_failures.pop(slot.name, None)
        slot.rollout_problem = None
        olds = slot.candidates()
        slot.canary = Arm(runner, rollout.canary_percent, "registry") if rollout.canary_percent > 0 else None
        slot.shadow = Arm(runner, rollout.shadow_share, "registry") if rollout.shadow_share > 0 else None
        for old in olds:
            if old is not runner:
                self._retire(old)

    def _detach(self, slot: ModelSlot, keep: Runner | None = None) -> None:
        """Remove the slot's canary and shadow; their runners close once their requests are done."""
        olds = slot.candidates()
        slot.canary = slot.shadow = None
        for old in olds:
            if old is not keep and old is not slot.runner:
                self._retire(old)

    def _retire(self, runner: Runner) -> None:
        task = asyncio.get_running_loop().create_task(runner.retire(self.plane.settings.graceful_timeout_s))
        self.retiring.add(task)
        task.add_done_callback(self.retiring.discard)

    def _prepare(self, slot: ModelSlot, target: ModelVersion) -> Runner:
        """Download, verify, load and warm ``target`` (in a worker thread, while the old version serves)."""
        from berth.serving.dataplane import load_source, settle_heap
        from berth.serving.slot import start_runner

        started = time.perf_counter()
        model = load_source(target.uri, trust=self.plane.settings.trust,
                            registry=self.plane.registry_of(slot.name), compiled=self.plane.settings.compiled)
        if not self.plane.settings.allow_signature_change:
            check_compatible(slot.runner.signature, model.signature)
        runner = start_runner(slot.name, model, str(target.version), self.plane.settings, self.plane.metrics,
                              started)
        settle_heap()
        return runner


def check_compatible(old: Signature, new: Signature) -> None:
    """Raise SignatureError unless every request valid for ``old`` is valid, and means the same, for ``new``.

    Same layout and columns; a column may widen (integer to float, not nullable to nullable), never narrow.
    """
    problems: list[str] = []
    if old.layout != new.layout:
        problems.append(f"layout {old.layout} became {new.layout}")
    elif old.tensor != new.tensor:
        problems.append(f"tensor {old.tensor} became {new.tensor}")
    before = {c.name: c for c in old.columns}
    after = {c.name: c for c in new.columns}
    problems += [f"column {name!r} removed" for name in before if name not in after]
    problems += [f"column {name!r} added" for name in after if name not in before]
    for name in before.keys() & after.keys():
        was, now = before[name], after[name]
        widened = was.is_integer and now.dtype.startswith("float")
        if was.dtype != now.dtype and not widened:
            problems.append(f"column {name!r} changed from {was.dtype} to {now.dtype}")
        if was.nullable and not now.nullable:
            problems.append(f"column {name!r} no longer accepts missing values")
    if problems:
        raise SignatureError(
            "the new version's input signature differs from the served one: " + "; ".join(problems)
            + " (set BERTH_ALLOW_SIGNATURE_CHANGE=1 to swap anyway)",
            [{"loc": ["signature", "inputs"], "msg": problem} for problem in problems])
