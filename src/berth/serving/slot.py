"""What a server holds for one served model: a slot pointing at the runner of the version being served.

A :class:`Runner` is one loaded version with its own batcher and thread. Requests are validated on the event
loop (cheap, vectorised), batched, and predicted in the runner's thread. All-numeric tables travel as plain
matrices, stacked with one ``np.concatenate`` per batch and turned into the model's DataFrame once per batch.
A slot following a registry alias swaps its runner when the alias moves (see :mod:`berth.serving.rollout`):
each request works on a :class:`SlotView` pinned to the runner current when it arrived, so it finishes on the
version it started on, and the old runner is closed only once no request holds it any more.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from berth import names
from berth.coercion import coerce, is_frame, matrix_to_frame
from berth.errors import BundleError
from berth.model import LoadedModel
from berth.serving.batching import Batcher
from berth.serving.inline import WARM_UP_LIMIT_S, CallCost, time_calls
from berth.serving.metrics import Metrics
from berth.serving.settings import ServeSettings


@dataclass
class Prediction:
    predictions: np.ndarray
    probabilities: np.ndarray | None = None  # when the request asked for them
    logged_probabilities: np.ndarray | None = None  # for the prediction log, asked for or not (ROC AUC)


@dataclass
class _Part:
    inputs: Any
    rows: int
    probabilities: bool


class Runner:
    def __init__(self, model: LoadedModel, version: str, settings: ServeSettings, metrics: Metrics) -> None:
        self.model = model
        self.version = version
        self.signature = model.signature
        self.metrics = metrics
        self.queue_gauge = metrics.queue_depth.labels(model.name)  # resolved once, not per request
        predictor = model.predictor
        self.as_matrix = self.signature.layout == "table" and self.signature.all_numeric
        self.wire_dtype = predictor.input_dtype if predictor.input_target == "ndarray" else None
        self.batching = settings.batching
        # the prediction log keeps class probabilities of every request, so ROC AUC works on any labelled request
        self.log_probabilities = (model.has_proba and settings.log_predictions and settings.log_probabilities
                                  and settings.log_sample_rate > 0)
        self.active = 0  # requests between arrival and answer on this runner (see retire)
        self.source = ""  # where a candidate runner came from (see berth.serving.arms)
        self.batcher: Batcher[_Part, Prediction] = Batcher(
            self._run_batch, max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_batch_delay_ms / 1000, name=model.name,
            on_batch=metrics.batch_size.labels(model.name).observe,
            cost=CallCost(settings.inline_budget_ms / 1000 if predictor.bounded_time else 0.0),
        )

    def prepare(self, data: Any, probabilities: bool) -> _Part:
        """Validate on the caller's side: a SignatureError here never reaches the model's thread."""
        if self.as_matrix:
            inputs = coerce(self.signature, data, to="ndarray", dtype=self.wire_dtype)
        else:
            inputs = self.model.prepare(data)
        return _Part(inputs, len(inputs), probabilities)

    async def predict(self, data: Any, probabilities: bool = False) -> Prediction:
        if not self.batching:
            part = self.prepare(data, probabilities)
            return await self.batcher.run_alone(part, part.rows)
        self.batcher.announce()
        try:
            part = self.prepare(data, probabilities)
        except BaseException:
            self.batcher.withdraw()
            raise
        return await self.batcher.submit(part, part.rows, announced=True)

    def _stack(self, parts: Sequence[_Part]) -> Any:
        if len(parts) == 1:
            stacked = parts[0].inputs
        elif is_frame(parts[0].inputs):
            import pandas as pd

            stacked = pd.concat([p.inputs for p in parts], ignore_index=True)
        else:
            stacked = np.concatenate([p.inputs for p in parts])
        if self.as_matrix and self.model.predictor.input_target == "dataframe":
            return matrix_to_frame(self.signature, stacked)
        return stacked

    def _run_batch(self, parts: Sequence[_Part]) -> list[Prediction]:
        inputs = self._stack(parts)
        predictions = np.asarray(self.model.predict_prepared(inputs))
        probabilities = None
        if self.model.has_proba and (self.log_probabilities or any(p.probabilities for p in parts)):
            probabilities = np.asarray(self.model.predict_proba_prepared(inputs))
        results, start = [], 0
        for part in parts:
            end = start + part.rows
            share = probabilities[start:end] if probabilities is not None else None
            results.append(Prediction(predictions[start:end], share if part.probabilities else None, share))
            start = end
        return results

    def warm_up(self) -> None:
        """Predictions on the signature's example, so the first request does not pay for lazy setup; their
        timings (one row, and a full batch when batching) decide whether calls may run on the event loop."""
        example = self.signature.example
        if not example:
            return
        part = self.prepare(example, self.model.has_proba)
        started = time.perf_counter()
        self._run_batch([part])
        first = time.perf_counter() - started
        cost = self.batcher.cost
        if not cost.budget_s or first >= WARM_UP_LIMIT_S:  # a slow model is not timed again: it stays in its thread
            cost.calibrate(first, part.rows)
            return
        small = time_calls(lambda: self._run_batch([part]))
        copies = max(1, self.batcher.max_batch_size // part.rows) if self.batching else 1
        if copies == 1 or small > cost.budget_s:  # too slow for the loop already: no batch to time
            cost.calibrate(small, part.rows)
            return
        batch = [part] * copies
        cost.calibrate(small, part.rows, time_calls(lambda: self._run_batch(batch)), part.rows * copies)

    async def close(self) -> None:
        await self.batcher.close()

    async def retire(self, grace_s: float) -> None:
        """Close once the requests still on this runner are answered (or after ``grace_s``)."""
        deadline = time.monotonic() + grace_s
        while self.active > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await self.close()


@dataclass
class Arm:
    """A candidate version beside the baseline: ``share`` is a percentage of requests for a canary (0-100), a
    fraction of requests for a shadow (0-1). ``source`` says where it came from (a URI, or the registry)."""

    runner: Runner
    share: float
    source: str


BUCKETS = 10_000  # canary shares have a resolution of 0.01 %
ROUTE_KEY_HEADER = "x-berth-route-key"  # a caller's key (HTTP header, gRPC metadata): always the same side


def route_bucket(key: str) -> int:
    """A caller's fixed place in [0, BUCKETS): the same key lands in the same bucket in every worker and restart,
    and a canary of p % takes the buckets below p % of BUCKETS, so raising p only moves more keys over."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def to_candidate(percent: float, key: str | None) -> bool:
    """Whether a request goes to a canary of ``percent`` %: by its route key when given, else at random."""
    if percent <= 0:
        return False
    if percent >= 100:
        return True
    bucket = route_bucket(key) if key is not None else random.randrange(BUCKETS)
    return bucket < percent * (BUCKETS // 100)


@dataclass(frozen=True)
class SlotView:
    """A slot as one request sees it: the runner chosen when the request arrived, whatever swaps follow.

    From :meth:`ModelSlot.pin` to :meth:`release` the runner counts the request as active, so a swapped-out
    runner is not closed while a request pinned to it is still decoding its body or waiting for its batch.
    ``shadow`` is the candidate this request is also sent to, after its answer (pinned the same way, and
    released by the shadow call).
    """

    name: str
    runner: Runner
    ready: bool
    shadow: Runner | None = None

    def release(self) -> None:
        self.runner.active -= 1


class ModelSlot:
    def __init__(self, name: str, runner: Runner, load_seconds: float) -> None:
        self.name = name
        self.runner = runner
        self.load_seconds = load_seconds
        self.ready = False
        self.problem: str | None = None  # why the version the alias names is not the one served, if it is not
        self.rollout_problem: str | None = None  # why the registry's rollout candidate is not beside it
        self.follows: Any = None  # the ModelUri of the alias this slot follows (a registry URI with @alias)
        self.canary: Arm | None = None  # answers share % of the requests instead of the baseline
        self.shadow: Arm | None = None  # also gets a share of the requests the baseline answered

    def pin(self, route_key: str | None = None, version: str | None = None, choose: bool = True) -> SlotView:
        """The runner for one request; the caller must :meth:`SlotView.release` it when answered.

        ``version`` asks for one served version (the baseline's or the canary's), else a canary takes its share
        (by ``route_key`` when given, at random otherwise) unless ``choose`` is false (metadata routes). A
        request the baseline answers is also given to the shadow, when there is one, with its probability.
        """
        runner, canary, shadow = self.runner, self.canary, None
        if canary is not None and canary.runner.version != runner.version:
            if version is not None:
                runner = canary.runner if version == canary.runner.version else runner
            elif choose and to_candidate(canary.share, route_key):
                runner = canary.runner
        arm = self.shadow
        if (arm is not None and choose and runner is self.runner and arm.runner.version != runner.version
                and (arm.share >= 1 or random.random() < arm.share)):
            shadow = arm.runner
            shadow.active += 1
        runner.active += 1
        return SlotView(self.name, runner, self.ready, shadow)

    def candidates(self) -> list[Runner]:
        """The runners of the canary and the shadow (one runner when both are the same version)."""
        found: list[Runner] = []
        for arm in (self.canary, self.shadow):
            if arm is not None and all(arm.runner is not r for r in found):
                found.append(arm.runner)
        return found

    def swap(self, runner: Runner) -> Runner:
        """Serve ``runner`` from now on (one assignment: atomic for the event loop); returns the old one."""
        old, self.runner = self.runner, runner
        return old

    @classmethod
    def load(cls, name: str, model: LoadedModel, version: str, settings: ServeSettings, metrics: Metrics,
             started: float) -> ModelSlot:
        runner = start_runner(name, model, version, settings, metrics, started)
        slot = cls(name, runner, time.perf_counter() - started)
        slot.ready = True
        return slot


def start_runner(name: str, model: LoadedModel, version: str, settings: ServeSettings, metrics: Metrics,
                 started: float) -> Runner:
    """A warmed-up runner for ``model``, its load time recorded in the metrics."""
    check_served(name, model.name, version)
    runner = Runner(model, version, settings, metrics)
    runner.warm_up()
    metrics.model_load_seconds.labels(name, version).set(time.perf_counter() - started)
    return runner


def check_served(name: str, model_name: str, version: str) -> None:
    """Names and versions become response headers, metric labels and file names under the monitoring store:
    each must pass the rules of :mod:`berth.names` (the manifest was checked on load; this is the sink's check)."""
    problem = names.name_problem(name) or names.name_problem(model_name) or names.version_problem(version)
    if problem:
        raise BundleError(f"cannot serve this model: {problem}")
