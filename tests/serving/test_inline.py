"""Cheap predict calls on the event loop (berth.serving.inline), and the response head joined to its body."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from berth.flavors.sklearn import library_code_only
from berth.serving.batching import Batcher
from berth.serving.connections import JoinedHead
from berth.serving.inline import CallCost


def test_a_call_is_inline_only_when_measured_and_within_the_budget() -> None:
    cost = CallCost(0.001)
    assert not cost.inline(1)  # never timed: the thread
    cost.calibrate(0.0002, 1, 0.0008, 64)  # 0.2 ms for one row, 0.8 ms for 64
    assert cost.inline(1) and cost.inline(64)
    assert not cost.inline(200)
    assert 64 <= cost.rows_within_budget() < 200
    assert not CallCost(0.0).inline(1)  # a budget of 0 keeps every call in the thread


def test_a_model_slower_than_measured_goes_back_to_the_thread() -> None:
    cost = CallCost(0.001)
    cost.calibrate(0.0001)
    calls = 0
    while cost.inline(1):
        cost.observe(1, 0.05)  # each inline call takes 50 ms instead of 0.1
        calls += 1
        assert calls < 10, "the estimate never caught up"
    assert calls >= 1
    while not cost.inline(1):  # its calls in the thread are quick again (the machine was busy for a while)
        cost.observe(1, 0.0001)
        calls += 1
        assert calls < 40, "the estimate never came back"


def _threads_batcher(cost: CallCost) -> tuple[Batcher[int, int], list[str]]:
    seen: list[str] = []

    def run(parts: Sequence[int]) -> list[int]:
        seen.append(threading.current_thread().name)
        return [p * 2 for p in parts]

    return Batcher(run, max_batch_size=8, max_delay_s=0, cost=cost), seen


def test_the_batcher_predicts_on_the_loop_when_cheap_and_in_its_thread_otherwise() -> None:
    cheap = CallCost(1.0)
    cheap.calibrate(0.0)
    for cost, where in ((cheap, "MainThread"), (CallCost(0.0), "berth-model")):
        batcher, seen = _threads_batcher(cost)

        async def scenario(batcher: Batcher[int, int] = batcher) -> list[int]:
            try:
                return list(await asyncio.gather(*(batcher.submit(i, 1) for i in range(5))))
            finally:
                await batcher.close()

        assert asyncio.run(scenario()) == [0, 2, 4, 6, 8]
        assert seen and all(name.startswith(where) for name in seen), seen


def test_an_inline_batch_that_raises_fails_only_the_request_that_broke_it() -> None:
    cost = CallCost(1.0)
    cost.calibrate(0.0)

    def run(parts: Sequence[int]) -> list[int]:
        if 3 in parts:
            raise ValueError("three")
        return list(parts)

    batcher: Batcher[int, int] = Batcher(run, max_batch_size=8, max_delay_s=0, cost=cost)

    async def scenario() -> list[Any]:
        try:
            return list(await asyncio.gather(*(batcher.submit(i, 1) for i in range(5)), return_exceptions=True))
        finally:
            await batcher.close()

    results = asyncio.run(scenario())
    assert [r for r in results if not isinstance(r, Exception)] == [0, 1, 2, 4]
    assert isinstance(results[3], ValueError)


def test_only_library_code_may_run_on_the_loop() -> None:
    assert library_code_only(LogisticRegression())
    assert library_code_only(make_pipeline(StandardScaler(), LogisticRegression()))
    assert not library_code_only(make_pipeline(FunctionTransformer(lambda x: x), LogisticRegression()))

    class Custom(LogisticRegression):
        pass

    assert not library_code_only(Custom())


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def test_the_response_head_goes_out_with_the_first_body_bytes() -> None:
    raw = _Transport()
    joined = JoinedHead(raw)
    joined.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer is not held: the client waits for it
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert len(raw.writes) == 1
    joined.write(b"{}")
    assert raw.writes[1] == b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
    joined.write(b"HTTP/1.1 more body that looks like a head")
    assert raw.writes[2] == b"HTTP/1.1 more body that looks like a head"
    assert not joined.is_closing()


def test_a_held_head_is_sent_when_the_response_ends_without_a_body_or_the_connection_closes() -> None:
    raw = _Transport()
    joined = JoinedHead(raw)
    joined.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")  # a HEAD answer: no body follows
    joined.flush()
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"]
    raw2 = _Transport()
    closing = JoinedHead(raw2)
    closing.write(b"HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n")
    closing.close()
    assert raw2.writes and raw2.closed
