"""Cold start: how long a server takes from its process's start until it is ready, median of several starts.

Each start is a fresh process on a fresh port; the harness polls the server's readiness route every 20 ms
(berth: ``/health/ready``; MLflow ``/ping``; BentoML ``/readyz``; MLServer the model's ``/v2/models/NAME/ready``;
the tutorial's Flask app under gunicorn has none, so there it is its first successful prediction), then sends one
prediction and checks the answer. Both times are measured from just before the process was started. The memory
of the server's processes is sampled a second after the first prediction of the first start.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from bench.serving import memory
from bench.serving.common import HOST, READY_TIMEOUT_S, WORK, log
from bench.serving.models import Model
from bench.serving.procs import Server, free_port, http, wait_quiet, wait_ready
from bench.serving.servers import Spec, server_env, skip_reason

POLL_S = 0.02
SETTLE_S = 1.0


def median_summary(values: list[float]) -> dict[str, Any] | None:
    """Median, minimum and maximum of ``values`` (seconds, two decimals) and the values themselves; None when
    there are none."""
    if not values:
        return None
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def one_start(spec: Spec, model: Model, server: Server, base: str) -> tuple[float, float, dict[str, Any]]:
    """Start ``server`` (made for ``spec``, listening at ``base``), wait until ready, predict once; returns (ready
    s, first prediction s, the check). The caller stops the server."""
    body = json.dumps(spec.body(model)).encode()
    server.start()
    method, ready_path = spec.ready
    ready_s = wait_ready(server, base + (ready_path or spec.path), method, body if ready_path is None else None,
                         READY_TIMEOUT_S, interval=POLL_S)
    status, answer = http("POST", base + spec.path, body)
    first_s = time.monotonic() - server.started_at
    if status != 200:
        raise RuntimeError(f"the first prediction got HTTP {status}: {answer[:300]!r}")
    check: dict[str, Any] = {"status": status}
    got = spec.answer(json.loads(answer))
    if got != model.expected:
        check["mismatch"] = f"expected {model.expected!r}, got {got!r}"
    return ready_s, first_s, check


def measure(spec: Spec, model: Model, starts: int, quiet_wait: float = 0.0) -> dict[str, Any]:
    """``starts`` cold starts of ``spec`` serving ``model``; never leaves a server running."""
    record: dict[str, Any] = {"model": model.key, "server": spec.key, "label": spec.label, "workers": spec.workers,
                              "variant": spec.variant}
    skip = skip_reason(spec, model)
    if skip:
        record["skipped"] = skip
        log(f"cold start {model.key} / {spec.key}: skipped: {skip}")
        return record
    ready: list[float] = []
    first: list[float] = []
    if quiet_wait > 0:  # once per server and model: before each start, a busy machine would multiply the wait
        record["other_cpu_cores_before"] = wait_quiet(quiet_wait)
    for index in range(starts):
        port = free_port()
        env = server_env(spec.env, model)
        if spec.extra_env is not None:
            env.update(spec.extra_env(model, port))
        name = f"cold-{model.key}-{spec.key}-{index + 1}"
        name = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in name)
        server = Server(spec.argv(model, port), env=env, cwd=spec.cwd, log_path=WORK / "logs" / f"{name}.log")
        try:
            ready_s, first_s, check = one_start(spec, model, server, f"http://{HOST}:{port}")
            ready.append(ready_s)
            first.append(first_s)
            if check.get("mismatch"):
                record["check"] = check
            if index == 0 and server.proc is not None:
                time.sleep(SETTLE_S)  # let the other workers of a multi-worker server finish loading too
                record["memory"] = memory.summarize(memory.sample(server.proc.pid), spec.workers)
        except Exception as error:
            record["error"] = f"start {index + 1}: {type(error).__name__}: {error}"
            log(f"cold start {model.key} / {spec.key}: {record['error']}")
            break
        finally:
            server.stop()
    record["ready_s"] = median_summary(ready)
    record["first_prediction_s"] = median_summary(first)
    if ready:
        log(f"cold start {model.key} / {spec.key}: ready in {record['ready_s']['median']:.2f} s (median of "
            f"{len(ready)}), first prediction at {record['first_prediction_s']['median']:.2f} s")
    return record
