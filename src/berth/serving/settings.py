"""Server settings: typed, read from ``BERTH_*`` environment variables, overridden by CLI options.

Every field is documented in ``docs/serving.md``; a test checks that each one is.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_workers() -> int:
    """One worker process per core, at most 4: batching makes each worker efficient, and more processes than
    cores only add contention (scikit-learn predict holds the GIL)."""
    return max(1, min(os.cpu_count() or 1, 4))


class ServeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BERTH_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on.")
    workers: int = Field(default_factory=default_workers, ge=1, le=64,
                         description="Worker processes, each with its own copy of every model.")
    batching: bool = Field(True, description="Coalesce concurrent requests for a model into one predict call.")
    max_batch_size: int = Field(64, ge=1, le=100_000, description="Most rows in one batched predict call.")
    max_batch_delay_ms: float = Field(2.0, ge=0, le=10_000,
                                      description="Longest wait for more requests while others are arriving.")
    inline_budget_ms: float = Field(1.0, ge=0, le=1000, description="A predict call estimated (from timings at "
                                    "warm-up, then from its own calls) to take at most this many milliseconds runs on "
                                    "the event loop instead of the model's thread (0: always the thread).")
    timeout_s: float = Field(30.0, gt=0, description="A request still unanswered after this gets 504.")
    grpc_port: int | None = Field(None, ge=0, le=65535, description="Also serve the Open Inference Protocol over "
                                  "gRPC on this port (off when unset; needs berth[grpc]).")
    max_body_mb: float = Field(10.0, gt=0, description="Largest request body accepted; larger gets 413.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Bearer keys for prediction routes (comma-separated in BERTH_API_KEYS).")
    auth_all: bool = Field(False, description="Also require a key for health, metrics and docs routes.")
    protect_docs: bool = Field(False, description="Also require a key for /docs and /openapi.json (they show "
                                                  "example rows from the training sample).")
    protect_metrics: bool = Field(False, description="Also require a key for /metrics (it names the models).")
    trust: bool = Field(False, description="Allow pickle-based payloads (they run code when loaded).")
    compiled: bool = Field(True, description="Predict with a bundle's compiled twin (ONNX, proven equivalent at "
                           "save) when it has one; false serves the original model (--no-compiled).")
    heartbeat_timeout_s: float = Field(30.0, gt=0, le=3600, description="A worker silent this long (event loop "
                                       "blocked, process stopped, or a predict call running longer than timeout_s "
                                       "plus this) is killed and replaced.")
    header_timeout_s: float = Field(10.0, gt=0, le=3600, description="A client must send a request's headers "
                                    "within this many seconds of connecting (or of its previous response).")
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="A request's body must arrive within this "
                                  "many seconds of its headers; later gets 408.")
    keep_alive_s: int = Field(5, ge=1, le=3600, description="An idle keep-alive connection is closed after "
                                "this many seconds.")
    max_connections: int = Field(0, ge=0, description="Open connections per worker before new requests get 503 "
                                 "(0: sized from the file descriptor limit, at most 4096).")
    graceful_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM, how long in-flight requests may take.")
    registry_url: str | None = Field(None, description="The registry models:/ URIs are resolved in (default: "
                                     "sqlite:///$BERTH_HOME/registry.db), as in the registry commands.")
    poll_interval_s: float = Field(5.0, gt=0, le=3600, description="How often a server following a registry "
                                   "alias (models:/NAME@ALIAS) checks where the alias points.")
    allow_signature_change: bool = Field(False, description="Swap in a new version of a followed alias even if "
                                         "its input signature differs from the served one.")
    canary: str = Field("", description="A candidate answering a share of the requests: URI=PERCENT, e.g. "
                        "models:/iris@candidate=10 (see docs/rollouts.md).")
    shadow: str = Field("", description="A candidate also sent every request (or a share, URI=FRACTION) after "
                        "the answer; its outputs are logged as shadow rows (see docs/rollouts.md).")
    shadow_queue_size: int = Field(1000, ge=1, le=1_000_000, description="Shadow calls waiting for the "
                                   "candidate; more are dropped and counted.")
    shadow_concurrency: int = Field(64, ge=1, le=1024, description="Shadow calls in flight at once per worker "
                                    "(they batch like requests: 64 lets a candidate batch as the baseline does).")
    shadow_timeout_s: float = Field(2.0, gt=0, le=600, description="A shadow call unanswered after this is "
                                    "abandoned and counted as a timeout.")
    telemetry: bool = Field(False, description="FastAPI's OpenTelemetry traces and metrics, exported through the "
                                               "OpenTelemetry SDK configured in the environment.")
    log_level: str = Field("info", description="uvicorn log level: critical, error, warning, info, debug.")
    platform: Literal["", "none", "sagemaker", "vertex"] = Field(
        "", description="Cloud platform whose variables to honour (empty: detect; see serving/platforms.py).")
    predict_route: str = Field("", description="An extra route for Vertex AI-style predictions (AIP_PREDICT_ROUTE).")
    health_route: str = Field("", description="An extra readiness route (AIP_HEALTH_ROUTE on Vertex AI).")

    log_predictions: bool = Field(True, description="Record answered predictions in the monitoring log.")
    log_sample_rate: float = Field(1.0, ge=0, le=1, description="Share of answered requests recorded.")
    log_probabilities: bool = Field(True, description="Log a classifier's class probabilities for every request "
                                    "(so the report has ROC AUC), also when the request did not ask for them.")
    log_queue_size: int = Field(10_000, ge=1, description="Records waiting to be written; more are dropped.")
    log_flush_interval_s: float = Field(2.0, gt=0, description="Longest time a record waits in the queue.")
    monitor_dir: str | None = Field(None, description="Where the prediction log goes: a directory or an fsspec URL "
                                                          "(s3://bucket/prefix); default $BERTH_HOME/monitoring.")
    drift_interval_s: float = Field(60.0, ge=0, description="How often /metrics drift gauges are recomputed "
                                                            "(0: never).")
    drift_window_s: float = Field(3600.0, gt=0, description="The span of recent predictions drift gauges cover.")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):  # BERTH_API_KEYS: comma-separated; a stray comma is fine, no key at all is not
            keys = [key.strip() for key in value.split(",") if key.strip()]
            if not keys:
                raise ValueError("BERTH_API_KEYS is set but holds no key (an unset variable?); give keys or unset it")
            return keys
        return value

    @field_validator("api_keys")
    @classmethod
    def _no_empty_keys(cls, keys: list[str]) -> list[str]:
        """An empty key (``--api-key "$UNSET"``, ``BERTH_API_KEYS=" , "``) is a mistake that would either let an
        empty bearer token in or turn authentication off without a word: refuse it."""
        if any(not key.strip() for key in keys):
            raise ValueError("an API key is empty (an unset variable?); give non-empty keys or none at all")
        if any(key != key.strip() or any(c.isspace() or not c.isprintable() for c in key) for key in keys):
            raise ValueError("API keys cannot hold spaces or control characters")
        return keys

    @model_validator(mode="after")
    def _protection_needs_keys(self) -> ServeSettings:
        if (self.protect_docs or self.protect_metrics or self.auth_all) and not self.api_keys:
            raise ValueError("protect_docs, protect_metrics and auth_all need API keys (--api-key or BERTH_API_KEYS)")
        return self

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)
