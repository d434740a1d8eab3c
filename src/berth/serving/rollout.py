"""Live rollout: a server started on ``models:/NAME@ALIAS`` follows the alias with zero downtime.

Every ``poll_interval_s`` each worker asks the registry where the alias points (one indexed query). When it has
moved, the new version is downloaded, verified against its digest, loaded and warmed up in a thread while the
old one keeps answering; then the slot's runner is swapped in one assignment. Requests already in flight
finish on the runner they were pinned to (see :class:`berth.serving.slot.SlotView`); the old runner closes
once none is left. A version that cannot be served (corrupt, refused by the safety checks, a different input
signature) is not swapped in: the old version keeps serving, ``/health/ready`` names the problem under the
model, ``berth_model_swaps_total{outcome="failed"}`` counts it, and the log says why. The failed version is
tried again only after ``RETRY_POLLS`` polls or once the alias moves elsewhere.
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
    from berth.registry.records import ModelVersion
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
        """Swap ``slot`` to the alias's version if it moved; True when a swap happened."""
        loop = asyncio.get_running_loop()
        follows = slot.follows
        registry = self.plane.registry_of(slot.name)
        target = await loop.run_in_executor(None, registry.alias_version, follows.name, follows.alias)
        if target is None:
            slot.problem = f"alias {follows} no longer exists; still serving version {slot.runner.version}"
            return False
        if str(target.version) == slot.runner.version:
            slot.problem = None
            self.failures.pop(slot.name, None)
            return False
        failure = self.failures.get(slot.name)
        if failure is not None and failure.version == target.version and failure.polls_left > 0:
            failure.polls_left -= 1
            return False
        try:
            runner = await loop.run_in_executor(None, self._prepare, slot, target)
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
        retiring = loop.create_task(old.retire(self.plane.settings.graceful_timeout_s))
        self.retiring.add(retiring)
        retiring.add_done_callback(self.retiring.discard)
        return True

    def _prepare(self, slot: ModelSlot, target: ModelVersion) -> Runner:
        """Download, verify, load and warm ``target`` (in a worker thread, while the old version serves)."""
        from berth.serving.dataplane import load_source, settle_heap
        from berth.serving.slot import start_runner

        started = time.perf_counter()
        model = load_source(target.uri, trust=self.plane.settings.trust,
                            registry=self.plane.registry_of(slot.name))
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
