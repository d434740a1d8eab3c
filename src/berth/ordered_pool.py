"""``ordered_map``: apply a function to a stream of items on a few threads, results in input order, bounded.

At most ``in_flight`` items are taken from the stream whose results the consumer has not taken yet, so memory
holds that many items and results whatever the stream's length, and a slow consumer (a writer) holds the
producer back instead of letting results pile up. With one worker it is a plain loop in the caller's thread.
An exception of the function reaches the consumer at that item's place in the order, after every earlier
result; the items not yet started are cancelled and the running ones finish before it propagates.

Threads, not processes: the work it runs (numpy, Arrow, onnxruntime, scikit-learn's tree traversal) releases
the GIL, and a thread shares the loaded model instead of loading or copying it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(function: Callable[[T], R], items: Iterable[T], *, workers: int,
                in_flight: int | None = None) -> Iterator[R]:
    """``map(function, items)`` on ``workers`` threads, at most ``in_flight`` (default ``2 * workers``) ahead."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    limit = in_flight if in_flight is not None else 2 * workers
    if limit < 1:
        raise ValueError(f"in_flight must be at least 1, not {limit}")
    if workers == 1:
        yield from map(function, items)
        return
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="berth-batch") as pool:
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
