"""Prometheus metrics of a server, multi-process aware.

With several worker processes, ``PROMETHEUS_MULTIPROC_DIR`` (set by the supervisor) makes every worker write its
samples to files there and ``/metrics`` aggregates them, whichever worker answers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

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
