"""Shadow calls: a copy of an answered request sent to a candidate, off the request's path.

The endpoint offers a :class:`ShadowJob` once its response is built (one ``put_nowait``); ``concurrency`` worker
tasks of the event loop take jobs and call the candidate through its own runner (its own batcher and thread),
each call bounded by ``timeout_s``. The queue is bounded: when it is full the job is dropped and counted, never
waited for. Whatever the candidate does (fails, hangs, is slow) only its own outcome counter and the shadow rows
of the prediction log see it: the caller already has the baseline's answer. The candidate's outputs go to the
prediction log under the request's id, with ``shadow`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from berth.monitoring.log import PendingRecord
from berth.serving.slot import Runner

log = logging.getLogger("berth.serve")
OUTCOMES = ("ok", "error", "timeout", "dropped")


@dataclass(slots=True)
class ShadowJob:
    model: str
    runner: Runner  # pinned (active + 1) until the job is done or dropped
    request_id: str
    data: Any
    probabilities: bool
    rows: int  # input rows (the baseline's answer had as many)


class ShadowDispatcher:
    def __init__(self, settings: Any, metrics: Any, recorder: Any) -> None:
        self.timeout_s = settings.shadow_timeout_s
        self.concurrency = settings.shadow_concurrency
        self.queue_size = settings.shadow_queue_size
        self.recorder = recorder
        registry = None if metrics.multiprocess else metrics.registry
        self.calls = Counter("berth_shadow_requests", "Shadow calls to a candidate, by outcome (ok, error, "
                             "timeout, dropped: the shadow queue was full).", ["model", "version", "outcome"],
                             registry=registry)
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self._queue: asyncio.Queue[ShadowJob] | None = None
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work(), name=f"berth-shadow-{i}") for i in range(self.concurrency)]

    def offer(self, job: ShadowJob) -> bool:
        """Queue ``job``; a full queue (or a stopped dispatcher) drops it, counted, at once."""
        if self._queue is not None:
            try:
                self._queue.put_nowait(job)
                return True
            except asyncio.QueueFull:
                pass
        self._done(job, "dropped")
        return False

    def _done(self, job: ShadowJob, outcome: str) -> None:
        job.runner.active -= 1
        self.counts[outcome] += 1
        self.calls.labels(job.model, job.runner.version, outcome).inc()

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            job = await self._queue.get()
            try:
                await self.call(job)
            except asyncio.CancelledError:
                self._done(job, "dropped")
                raise

    async def call(self, job: ShadowJob) -> None:
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(job.runner.predict(job.data, job.probabilities), self.timeout_s)
        except TimeoutError:
            self._done(job, "timeout")
            self._log(job, started, error=f"no answer within {self.timeout_s:g} s")
            return
        except Exception as exc:  # the candidate's failure is its own: counted and logged, never raised
            self._done(job, "error")
            self._log(job, started, error=f"{type(exc).__name__}: {exc}"[:500])
            return
        self._done(job, "ok")
        self._log(job, started, predictions=result.predictions, probabilities=result.probabilities)

    def _log(self, job: ShadowJob, started: float, *, predictions: Any = None, probabilities: Any = None,
             error: str | None = None) -> None:
        recorder = self.recorder
        if not recorder.enabled:
            return
        recorder.log.offer(PendingRecord(time.time(), job.model, job.runner.version, job.request_id, job.data,
                                         predictions, probabilities, time.perf_counter() - started,
                                         job.runner.model, shadow=True, error=error,
                                         rows=job.rows))

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        queue, self._queue = self._queue, None
        while queue is not None and not queue.empty():
            self._done(queue.get_nowait(), "dropped")
