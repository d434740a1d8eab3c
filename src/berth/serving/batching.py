"""Adaptive batching: concurrent requests for one model become one ``predict`` call.

One task per model drains a queue. It takes whatever is already waiting (up to ``max_batch_size`` rows) and
waits up to ``max_delay`` for more only while other requests for this model are on their way (received but not
yet queued); a lone request is dispatched at once. While a batch runs in the model's thread, new requests pile
up in the queue and form the next batch, so under load batches grow by themselves without any added delay.

A batch whose estimated cost fits the inline budget (:mod:`berth.serving.inline`) runs on the event loop instead of
the thread. Requests still go through the queue: the requests that one turn of the event loop reads become one
batch, which a request predicted at once in its own task would prevent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from berth.errors import NotReadyError
from berth.serving.inline import CallCost

Part = TypeVar("Part")
Result = TypeVar("Result")


@dataclass
class _Item(Generic[Part, Result]):
    part: Part
    rows: int
    future: asyncio.Future[Result] = field(repr=False)


class Batcher(Generic[Part, Result]):
    """Runs ``run_batch(parts) -> results`` (one result per part) in a dedicated thread, batching callers."""

    def __init__(self, run_batch: Callable[[Sequence[Part]], Sequence[Result]], *, max_batch_size: int,
                 max_delay_s: float, name: str = "model",
                 on_batch: Callable[[int], None] | None = None, cost: CallCost | None = None) -> None:
        self._run_batch = run_batch
        self.cost = cost or CallCost(0.0)  # whether a call is cheap enough for the event loop
        self.busy_since: float | None = None  # when the predict call running in the thread started
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay_s = max(0.0, max_delay_s)
        self.on_batch = on_batch
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"berth-{name}")
        self.queue: asyncio.Queue[_Item[Part, Result]] | None = None
        self.arriving = 0  # requests received for this model and not yet queued
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def run_batch(self, parts: Sequence[Part], rows: int | None = None) -> Sequence[Result]:
        """``run_batch`` (in the model's thread or inline), its start visible to :attr:`busy_for` and its duration
        folded into the cost estimate when ``rows`` is given: a call timed in the thread can bring a model that
        was slow for a while (a loaded machine) back to the loop."""
        self.busy_since = time.monotonic()
        started = time.perf_counter()
        try:
            return self._run_batch(parts)
        finally:
            self.busy_since = None
            if rows is not None:
                self.cost.observe(rows, time.perf_counter() - started)

    @property
    def busy_for(self) -> float:
        """How long the predict call now running has been running (0 when idle)."""
        since = self.busy_since
        return 0.0 if since is None else time.monotonic() - since

    @property
    def depth(self) -> int:
        return self.queue.qsize() if self.queue else 0

    def announce(self) -> None:
        """A request for this model has arrived and will be submitted shortly (it is being decoded)."""
        self.arriving += 1


    async def submit(self, part: Part, rows: int, *, announced: bool = False) -> Result:
        if announced:
            self.arriving -= 1
        self._check_open()
        if self._task is None:
            self._start()
        assert self.queue is not None
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Item(part, rows, future))
        return await future

    def withdraw(self) -> None:
        """An announced request will not be submitted after all (it failed validation)."""
        self.arriving -= 1

    async def run_alone(self, part: Part, rows: int = 1) -> Result:
        """Unbatched: one call, inline when cheap, else in the model's thread (batching switched off)."""
        self._check_open()
        if self.cost.inline(rows):
            return self.run_batch([part], rows)[0]  # on the event loop
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self.executor, self.run_batch, [part], rows)
        return results[0]

    def _start(self) -> None:
        self.queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="berth-batcher")

    async def _collect(self) -> list[_Item[Part, Result]]:
        assert self.queue is not None
        first = await self.queue.get()
        batch, rows = [first], first.rows
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_delay_s
        while rows < self.max_batch_size:
            try:
                item = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if self.arriving <= 0 or remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + item.rows > self.max_batch_size:
                self.queue.put_nowait(item)  # goes first into the next batch (order within a batch is free)
                break
            batch.append(item)
            rows += item.rows
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._dispatch(loop, await self._collect())

    async def _dispatch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item[Part, Result]]) -> None:
        live = [item for item in batch if not item.future.done()]  # callers that timed out are skipped
        if not live:
            return
        rows = sum(item.rows for item in live)
        if self.on_batch:
            self.on_batch(rows)
        try:
            if self.cost.inline(rows):
                results = self.run_batch([i.part for i in live], rows)
            else:
                results = await loop.run_in_executor(self.executor, self.run_batch, [i.part for i in live], rows)
        except Exception as exc:
            if len(live) == 1:
                _settle(live[0], exc)
                return
            await self._run_one_by_one(live)  # only the request that breaks the model should fail
            return
        for item, result in zip(live, results, strict=True):
            _settle(item, result)

    async def _run_one_by_one(self, items: list[_Item[Part, Result]]) -> None:
        loop = asyncio.get_running_loop()
        for item in items:
            try:
                if self.cost.inline(item.rows):
                    [result] = self.run_batch([item.part], item.rows)
                else:
                    [result] = await loop.run_in_executor(self.executor, self.run_batch, [item.part],
                                                          item.rows)
            except Exception as exc:
                _settle(item, exc)
            else:
                _settle(item, result)

    def _check_open(self) -> None:
        if self.closed:  # a runner is closed only once no request is pinned to it: this is a bug if reached
            raise NotReadyError("this model version has been retired; retry the request")

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # a predict call still running now was abandoned by its callers (they had their 504): waiting for it
        # could hang a graceful shutdown for good, so only an idle thread is joined
        self.executor.shutdown(wait=self.busy_since is None, cancel_futures=True)


def _settle(item: _Item[Any, Any], outcome: Any) -> None:
    if item.future.done():
        return
    if isinstance(outcome, BaseException):
        item.future.set_exception(outcome)
    else:
        item.future.set_result(outcome)
