"""Where a predict call runs: on the event loop (inline) when it is cheap, else in the model's thread.

Handing a call to the model's thread costs the event loop a queue put, a thread wake-up and a cross-thread
callback per batch, and makes the loop and the thread take turns on the GIL. For a model that answers in tens or
hundreds of microseconds (a linear model, an ONNX twin) that hand-off costs more than the call itself; for a
forest in scikit-learn (~10 ms) the thread keeps the loop free to read and validate the next requests meanwhile.
Measured through the batcher (bench/inline_crossover.py): inline costs less CPU per request at
every model cost, since the hand-off's cost does not depend on the model's; what grows with the model's cost is how
long the loop stalls, which the budget bounds.

:class:`CallCost` estimates a call's duration as ``fixed + per_row × rows``, first from timings at warm-up
(one row and one full batch) and then from every batch it runs, inline or in the thread (a moving average of the
observed over the estimated). A call runs inline only if its estimate is within ``budget_s``: a model that turns
out slower than measured (a larger input, a loaded machine) goes back to the thread after a few calls, so no
model holds the loop for long, and comes back once its calls are quick again. Without a warm-up timing (no
example in the signature) nothing runs inline.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WARM_UP_CALLS = 5  # the cheapest of these is the estimate: the first calls pay for caches and lazy set-up
WARM_UP_LIMIT_S = 0.25  # a slow model is timed fewer times; one call is always made
SMOOTHING = 0.2  # weight of the latest inline call in the moving average of observed / estimated


class CallCost:
    """The estimated duration of a predict call of ``rows`` rows, and whether that fits the inline budget."""

    def __init__(self, budget_s: float) -> None:
        self.budget_s = max(0.0, budget_s)
        self.fixed_s: float | None = None  # unknown until measured: never inline
        self.per_row_s = 0.0
        self.drift = 1.0  # observed / estimated, averaged over inline calls

    def estimate(self, rows: int) -> float | None:
        if self.fixed_s is None:
            return None
        return (self.fixed_s + self.per_row_s * max(0, rows - 1)) * self.drift

    def inline(self, rows: int) -> bool:
        estimate = self.estimate(rows)
        return estimate is not None and estimate <= self.budget_s

    def calibrate(self, small_s: float, small_rows: int = 1, batch_s: float | None = None,
                  batch_rows: int = 1) -> None:
        """Set the estimate from a timed call of ``small_rows`` rows and, optionally, one of ``batch_rows``."""
        small_rows = max(1, small_rows)
        if batch_s is not None and batch_rows > small_rows:
            self.per_row_s = max(0.0, batch_s - small_s) / (batch_rows - small_rows)
        self.fixed_s = max(0.0, small_s - self.per_row_s * (small_rows - 1))
        self.drift = 1.0

    def describe(self, rows: int) -> str:
        """For the startup log: where calls run and the estimates behind it."""
        one, full = self.estimate(1), self.estimate(rows)
        if one is None or full is None:
            return "predict in the model's thread (not timed: no example)"
        where = "in the model's thread"
        if self.inline(rows):
            where = "on the event loop"
        elif self.inline(1):
            where = f"on the event loop up to {self.rows_within_budget()} rows, in the model's thread beyond"
        return (f"predict {where} (estimated {one * 1e3:.3f} ms for 1 row, {full * 1e3:.3f} ms for {rows}; "
                f"inline budget {self.budget_s * 1e3:g} ms)")

    def rows_within_budget(self) -> int:
        """The most rows a call may have and still run inline (0: none)."""
        one = self.estimate(1)
        if one is None or one > self.budget_s:
            return 0
        if self.per_row_s <= 0:
            return 1_000_000
        return 1 + int((self.budget_s / self.drift - (self.fixed_s or 0.0)) / self.per_row_s)

    def observe(self, rows: int, seconds: float) -> None:
        """Fold an inline call's duration into the estimate."""
        base = self.estimate(rows)
        if base is None or base <= 0:
            return
        ratio = seconds / (base / self.drift)
        self.drift = (1 - SMOOTHING) * self.drift + SMOOTHING * ratio


def time_calls(call: Callable[[], object]) -> float:
    """The shortest of up to :data:`WARM_UP_CALLS` timed calls (fewer when they add up to WARM_UP_LIMIT_S)."""
    best = float("inf")
    spent = 0.0
    for _ in range(WARM_UP_CALLS):
        started = time.perf_counter()
        call()
        took = time.perf_counter() - started
        best = min(best, took)
        spent += took
        if spent >= WARM_UP_LIMIT_S:
            break
    return best
