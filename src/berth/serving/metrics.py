"""Prometheus metrics of a server, multi-process aware.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor) makes every worker write its
samples to files there and ``/metrics`` aggregates them, whichever worker answers.

Label values are bounded where they are set, whatever their source (a request, a bundle's manifest, a
registry): each value is at most :data:`MAX_LABEL_CHARS` printable characters (longer ones are cut and keep a
short hash, so distinct values stay distinct), and a metric holds at most :data:`MAX_SERIES` label sets; past
that, new ones are counted under ``__overflow__``. Model names a client puts in a URL never reach a label
unless a model of that name is served: they collapse to :data:`UNKNOWN`.
"""

from __future__ import annotations

import functools
import hashlib
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

MAX_LABEL_CHARS = 64
MAX_SERIES = 1000
UNKNOWN = "__unknown__"
OVERFLOW = "__overflow__"


def label_value(value: Any) -> str:
    """``value`` as a bounded label value: printable, at most MAX_LABEL_CHARS characters."""
    text = value if isinstance(value, str) else str(value)
    return _short_label(text) if len(text) <= 4 * MAX_LABEL_CHARS else _bounded_text(text)


@functools.lru_cache(maxsize=4096)  # the same few routes, models and statuses on every request
def _short_label(value: str) -> str:
    return _bounded_text(value)


def _bounded_text(value: str) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(value)[:4 * MAX_LABEL_CHARS])
    if len(text) <= MAX_LABEL_CHARS and len(str(value)) <= 4 * MAX_LABEL_CHARS:
        return text
    digest = hashlib.sha256(str(value).encode("utf-8", "replace")).hexdigest()[:8]
    return f"{text[:MAX_LABEL_CHARS - 9]}~{digest}"


class _Bounded:
    """A metric whose ``labels()`` bounds each value and the number of label sets (see the module docstring)."""

    def labels(self, *values: Any, **named: Any) -> Any:
        if named:
            values = tuple(named[name] for name in getattr(self, "_labelnames", ()))
        key = tuple(label_value(v) for v in values)
        series: dict[tuple[str, ...], Any] = getattr(self, "_metrics", {})
        if key not in series and len(series) >= MAX_SERIES:
            key = tuple(OVERFLOW for _ in key)
        return super().labels(*key)  # type: ignore[misc]


class Counter(_Bounded, _Counter):
    pass


class Gauge(_Bounded, _Gauge):
    pass


class Histogram(_Bounded, _Histogram):
    pass

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = None if self.multiprocess else self.registry  # multiprocess: values live in files
        self.requests = Counter("berth_requests", "Requests answered, by route, model, version and status.",
                                ["route", "model", "version", "status"], registry=registry)
        self.latency = Histogram("berth_request_duration_seconds", "Time from request to response.",
                                 ["route", "model"], buckets=LATENCY_BUCKETS, registry=registry)
        self.batch_size = Histogram("berth_batch_size_rows", "Rows per predict call.", ["model"],
                                    buckets=BATCH_BUCKETS, registry=registry)
        self.queue_depth = Gauge("berth_queue_depth", "Requests waiting for their batch.", ["model"],
                                 registry=registry, multiprocess_mode="livesum")
        self.in_flight = Gauge("berth_in_flight_requests", "Requests being handled.", registry=registry,
                               multiprocess_mode="livesum")
        self.model_load_seconds = Gauge("berth_model_load_seconds", "Time to load, verify and warm a model.",
                                        ["model", "version"], registry=registry, multiprocess_mode="max")
        self.model_swaps = Counter("berth_model_swaps", "Version changes of a model following a registry alias, "
                                   "by the version tried and the outcome (ok, failed).",
                                   ["model", "version", "outcome"], registry=registry)
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
