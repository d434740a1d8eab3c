"""The server's side of monitoring: request ids, recording answered predictions, drift gauges in /metrics.

Prediction handlers leave ``(runner, decoded input, Prediction)`` in ``request.state.prediction``; the endpoint
made by :class:`~berth.serving.handlers.Served` then calls :meth:`Recorder.record`, which queues one
:class:`PendingRecord` (no conversion, no I/O) on the :class:`~berth.monitoring.log.PredictionLog`. The log's
background task writes batches to the monitoring store; the queue is bounded and a full queue drops the record
(counted in ``berth_prediction_log_dropped_total``), never the request. Each worker process writes its own files.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import os
import random
import re
import time
from typing import Any

from starlette.requests import Request

from berth.monitoring.log import PendingRecord, PredictionLog
from berth.monitoring.store import Store
from berth.serving.metrics import Counter, Gauge

log = logging.getLogger("berth.serve")
REQUEST_ID_HEADER = "x-request-id"
_VALID_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII without spaces, as sent by proxies


_ID_PREFIX = os.urandom(10).hex()  # random per process: ids from different workers and restarts never collide
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """32 hex digits: a random per-process prefix and a counter. uuid4 reads the OS's random source on every
    call, which cost ~4 % of a worker's CPU at 1,700 req/s; this costs next to nothing."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class Recorder:
    """Request ids, the prediction log of one server process, and its monitoring gauges."""

    def __init__(self, settings: Any, metrics: Any) -> None:
        self.enabled = settings.log_predictions
        self.sample_rate = settings.log_sample_rate
        self.drift_interval_s = settings.drift_interval_s
        self.drift_window_s = settings.drift_window_s
        self.store = Store(settings.monitor_dir)
        registry = None if metrics.multiprocess else metrics.registry
        self.written = Counter("berth_prediction_log_records", "Prediction rows written to the monitoring log.",
                               registry=registry)
        self.dropped = Counter("berth_prediction_log_dropped",
                               "Prediction records dropped: the log queue was full or a write failed.",
                               registry=registry)
        self.feature_drift = Gauge("berth_feature_drift_score", "Drift score of an input feature (or of the "
                                   "predictions) over the drift window; see docs/monitoring.md for the test.",
                                   ["model", "feature", "method"], registry=registry, multiprocess_mode="max")
        self.feature_drifted = Gauge("berth_feature_drifted", "1 when the feature drifted over the drift window.",
                                     ["model", "feature"], registry=registry, multiprocess_mode="max")
        self.dataset_drift = Gauge("berth_dataset_drift", "1 when the share of drifted features passes the rule's "
                                   "threshold.", ["model"], registry=registry, multiprocess_mode="max")
        self.drift_share = Gauge("berth_drift_share", "Share of the features that drifted.", ["model"],
                                 registry=registry, multiprocess_mode="max")
        self.log = PredictionLog(self.store, max_queue=settings.log_queue_size,
                                 flush_interval_s=settings.log_flush_interval_s,
                                 on_drop=self.dropped.inc, on_write=self.written.inc)
        self._drift_task: asyncio.Task[None] | None = None
        self.writable: bool | None = None  # the startup write probe's answer

    # ------------------------------------------------------------------ per request

    @staticmethod
    def request_id(request: Request) -> str:
        """The client's ``x-request-id`` when it sent a sane one, else a new unique id."""
        sent = request.headers.get(REQUEST_ID_HEADER)
        return sent if sent and _VALID_ID.match(sent) else new_request_id()

    def record(self, request: Request, request_id: str, model: str, latency_s: float) -> None:
        """Queue the prediction the handler left on ``request.state`` (if any, and if sampled)."""
        if not self.enabled:
            return
        captured = getattr(request.state, "prediction", None)
        if captured is None or (self.sample_rate < 1.0 and random.random() >= self.sample_rate):
            return
        runner, data, result = captured
        probabilities = result.probabilities
        if probabilities is None:
            probabilities = getattr(result, "logged_probabilities", None)
        self.log.offer(PendingRecord(time.time(), model, runner.version, request_id, data, result.predictions,
                                     probabilities, latency_s, runner.model))

    def record_error(self, runner: Any, request_id: str, model: str, latency_s: float,
                     failure: BaseException | None) -> None:
        """Queue a request the chosen version failed to answer (a 5xx): one row with its error and no
        prediction, so a version's error rate (``berth monitor compare``) counts it. Reports skip such rows."""
        if not self.enabled or (self.sample_rate < 1.0 and random.random() >= self.sample_rate):
            return
        message = f"{type(failure).__name__}: {failure}"[:500] if failure is not None else "server error"
        self.log.offer(PendingRecord(time.time(), model, runner.version, request_id, None, None, None, latency_s,
                                     runner.model, error=message, rows=1))

    # ------------------------------------------------------------------ lifespan

    async def start(self, plane: Any) -> None:
        if self.enabled:
            problem = await asyncio.get_running_loop().run_in_executor(None, self.store.probe)
            self.writable = problem is None
            if problem is None:
                log.info("prediction log: writing to %s", self.store.root)
            else:
                log.error("prediction log: cannot write to %s (%s): predictions will be dropped and counted in "
                          "berth_prediction_log_dropped_total; set BERTH_HOME or BERTH_MONITOR_DIR to a writable "
                          "place (see docs/monitoring.md)", self.store.root, problem)
            self.log.start()
        if self.drift_interval_s > 0:
            self._drift_task = asyncio.get_running_loop().create_task(self._drift_loop(plane),
                                                                      name="berth-drift-gauges")

    async def stop(self) -> None:
        """Stop the gauges' task and flush what is queued (on shutdown, SIGTERM included)."""
        if self._drift_task is not None:
            self._drift_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drift_task
        if self.enabled:
            await self.log.close()
            log.info("prediction log: %d rows written, %d records dropped", self.log.written, self.log.dropped)

    async def _drift_loop(self, plane: Any) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.drift_interval_s)
            try:
                await loop.run_in_executor(None, self.update_drift, list(plane.slots))
            except Exception:  # the gauges are best effort; the server must not fail because of them
                log.exception("cannot compute drift gauges")

    def update_drift(self, models: list[str]) -> None:
        """Set the drift gauges of ``models`` from the log's last ``drift_window_s`` seconds."""
        from berth.monitoring.report import drift_status

        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=self.drift_window_s)
        for model in models:
            status = drift_status(model, since=since, store=self.store)
            if status is None:
                continue
            drift = status["drift"]
            for feature in [*drift["features"], status["prediction_drift"]]:
                if feature["method"]:
                    self.feature_drift.labels(model, feature["feature"], feature["method"]).set(feature["score"])
                    self.feature_drifted.labels(model, feature["feature"]).set(int(feature["drifted"]))
            self.dataset_drift.labels(model).set(int(drift["drifted"]))
            self.drift_share.labels(model).set(drift["share"])
