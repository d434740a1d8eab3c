"""The targets of the serving issues, checked against one run's data (the dict that ``run.py`` writes as JSON).

Throughput ratios are taken at the highest concurrency of the run (64 in a full run) unless a target says
otherwise. A target is about berth with its defaults (2 workers here) and, for issue 10, with its compiled
twin: each is checked for both variants, so the table also shows what the twin changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TWIN, PLAIN = "twin", "no twin"

# berth's throughput at the run's highest concurrency over each baseline's: the serving issue's targets, with
# issue 10's stricter ones for the RandomForest. MLServer: ahead (checked at every concurrency, see below).
RATIO_TARGETS: dict[str, float] = {"gunicorn": 5.0, "mlflow": 10.0, "bentoml-batch": 2.0}
RATIO_TARGETS_BY_MODEL: dict[str, dict[str, float]] = {"forest": {"gunicorn": 25.0, "bentoml-batch": 10.0}}
RF_C1_P50_MS = 1.5
COLD_W1_S = 1.5
COLD_W2_S = 2.0
COLD_BEFORE_S = 8.5  # berth --workers 1 to /health/ready before issue 10 (8.5-10 s): "without a twin, halved"
COLD_MODELS = ("logreg", "forest")


def ratio_target(model: str, baseline: str) -> float | None:
    return RATIO_TARGETS_BY_MODEL.get(model, {}).get(baseline, RATIO_TARGETS.get(baseline))


def run_of(record: dict[str, Any] | None, connections: int) -> dict[str, Any] | None:
    if record is None:
        return None
    return next((r for r in record.get("runs", []) if r["concurrency"] == connections), None)


def record_of(data: dict[str, Any], model: str, server: str, part: str = "records") -> dict[str, Any] | None:
    return next((r for r in data.get(part, []) if r["model"] == model and r["server"] == server), None)


def berth_server(variant: str, extra: str = "") -> str:
    return "berth" + (f" {extra}" if extra else "") + f" ({variant})"


def _why(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not measured"
    return str(record.get("skipped") or record.get("error") or "no result")


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


Check = Callable[[dict[str, Any], str], str]  # (data, variant) -> the cell: a value and ✓/✗, or why not


def throughput_ratio(model: str, baseline: str, target: float) -> Check:
    def check(data: dict[str, Any], variant: str) -> str:
        c_max = max(data["settings"]["concurrency"])
        mine = record_of(data, model, berth_server(variant))
        theirs = record_of(data, model, baseline)
        a, b = run_of(mine, c_max), run_of(theirs, c_max)
        if a is None:
            return f"– ({_why(mine)})"
        if b is None or not b["rps"]:
            return f"– ({baseline}: {_why(theirs)})"
        value = a["rps"] / b["rps"]
        return f"{value:.1f}x {_mark(value >= target)}"
    return check


def p50_at_c1(model: str, limit_ms: float) -> Check:
    def check(data: dict[str, Any], variant: str) -> str:
        mine = record_of(data, model, berth_server(variant))
        one = run_of(mine, 1)
        if one is None:
            return f"– ({_why(mine)})"
        return f"{one['p50_ms']:.2f} ms {_mark(one['p50_ms'] <= limit_ms)}"
    return check


def ahead_of(baseline: str) -> Check:
    """berth's req/s above the baseline's for every model and concurrency both were measured at; the cell gives
    the smallest ratio."""
    def check(data: dict[str, Any], variant: str) -> str:
        worst: tuple[float, str] | None = None
        missing = []
        for model in {r["model"] for r in data.get("records", [])}:
            mine, theirs = record_of(data, model, berth_server(variant)), record_of(data, model, baseline)
            for c in data["settings"]["concurrency"]:
                a, b = run_of(mine, c), run_of(theirs, c)
                if a is None or b is None or not b["rps"]:
                    missing.append(f"{model} c={c}")
                    continue
                value = a["rps"] / b["rps"]
                if worst is None or value < worst[0]:
                    worst = (value, f"{model} c={c}")
        if worst is None:
            first = next((r for r in data.get("records", []) if r["server"] == berth_server(variant)), None)
            return f"– ({_why(first)})"
        text = f"lowest {worst[0]:.1f}x ({worst[1]}) {_mark(worst[0] > 1 and not missing)}"
        return text + (f"; not measured: {', '.join(sorted(missing))}" if missing else "")
    return check


def cold_start(model: str, workers: int, limit_s: float | None, versus: str | None = None,
               only: str | None = None) -> Check:
    """Median time to ready of berth with ``workers`` at most ``limit_s`` and/or no later than the median first
    prediction of ``versus`` (a cold-start server key) for the same model; ``only``: a target of that variant
    alone."""
    def check(data: dict[str, Any], variant: str) -> str:
        if only is not None and variant != only:
            return f"(a target of berth ({only}) only)"
        mine = record_of(data, model, berth_server(variant, f"--workers {workers}"), "cold")
        if mine is None or not mine.get("ready_s"):
            return f"– ({_why(mine)})"
        value = mine["ready_s"]["median"]
        ok, bound = True, []
        if limit_s is not None:
            ok &= value <= limit_s
        if versus is not None:
            theirs = record_of(data, model, versus, "cold")
            if theirs is None or not theirs.get("first_prediction_s"):
                return f"{value:.2f} s – ({versus}: {_why(theirs)})"
            other = theirs["first_prediction_s"]["median"]
            ok &= value <= other
            bound.append(f"{versus}: {other:.2f} s")
        return f"{value:.2f} s" + (f" ({'; '.join(bound)})" if bound else "") + f" {_mark(ok)}"
    return check


def zero_errors(data: dict[str, Any], variant: str) -> str:
    mine = [r for r in [*data.get("records", []), *data.get("cold", [])] if r.get("variant") == variant]
    if not mine:
        return "– (not measured)"
    measured = [r for r in mine if not r.get("skipped")]
    if not measured:
        return f"– ({_why(mine[0])})"
    errors = sum(run["non_2xx"] + run["socket_errors"] for r in measured for run in r.get("runs", []))
    failed = [f"{r['model']} / {r['server']}" for r in measured if r.get("error")]
    text = f"{errors} errors" + (f", failed: {', '.join(failed)}" if failed else "")
    return f"{text} {_mark(errors == 0 and not failed)}"


def targets() -> list[tuple[str, Check]]:
    """Issue 10's targets in the issue's order, each with its check."""
    out: list[tuple[str, Check]] = []
    for model in COLD_MODELS:
        out += [
            (f"cold start, {model}, --workers 1: ready <= {COLD_W1_S} s and no later than gunicorn (1)'s first "
             "answer", cold_start(model, 1, COLD_W1_S, "gunicorn (1)")),
            (f"cold start, {model}, --workers 2: ready <= {COLD_W2_S} s", cold_start(model, 2, COLD_W2_S)),
            (f"cold start, {model}, --workers 1, without a twin: halved (<= {COLD_BEFORE_S / 2:g} s, from "
             f"{COLD_BEFORE_S:g} s)", cold_start(model, 1, COLD_BEFORE_S / 2, only=PLAIN)),
        ]
    out += [
        (f"RandomForest, c=1: p50 <= {RF_C1_P50_MS} ms", p50_at_c1("forest", RF_C1_P50_MS)),
        ("RandomForest, c=64: >= 25x gunicorn", throughput_ratio("forest", "gunicorn", 25.0)),
        ("RandomForest, c=64: >= 10x bentoml-batch", throughput_ratio("forest", "bentoml-batch", 10.0)),
        ("LogisticRegression, c=64: >= 5x gunicorn", throughput_ratio("logreg", "gunicorn", 5.0)),
        ("ahead of MLServer on every model at every concurrency", ahead_of("mlserver")),
        ("zero errors in every run", zero_errors),
    ]
    return out


def table(data: dict[str, Any]) -> list[str]:
    """The targets as markdown table lines: one row per target, one column per berth variant."""
    lines = [f"| target (issue 10) | berth ({TWIN}) | berth ({PLAIN}) |", "| --- | --- | --- |"]
    for text, check in targets():
        lines.append(f"| {text} | {check(data, TWIN)} | {check(data, PLAIN)} |")
    return lines
