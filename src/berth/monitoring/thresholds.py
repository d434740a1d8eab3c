"""The rule of ``berth monitor check``: what in a report counts as a failure."""

from __future__ import annotations

from typing import Any


def check(report: dict[str, Any], *, metric: str | None = None, max_drop: float = 0.05,
          minimum: float | None = None, min_labels: int = 30,
          latest_bucket: bool = False) -> tuple[list[str], list[str]]:
    """Problems (any one fails the check) and notes. A problem: dataset drift in the window (with
    ``latest_bucket``, also in the timeline's latest bucket alone), or the watched metric (with at least
    ``min_labels`` labels) more than ``max_drop`` below the bundle's recorded value or below ``minimum``.
    Higher is better for every metric except mae and rmse."""
    problems: list[str] = []
    notes: list[str] = list(report["summary"])
    drift = report.get("drift")
    if drift and drift["drifted"]:
        problems.append(f"dataset drift: {', '.join(drift['drifted_features'])} "
                        f"({drift['share']:.0%} of features; by chance {drift.get('chance', 0):.1%})")
    timeline = report.get("timeline")
    if latest_bucket and timeline and timeline["latest"]["dataset_drift"]:
        latest = timeline["latest"]
        problems.append(f"dataset drift in the latest {timeline['bucket']} bucket (from {latest['start'][:16]} UTC): "
                        f"{', '.join(latest['drifted_features'])}"
                        + (f"; drifting since {timeline['drift_since'][:16]} UTC" if timeline["drift_since"] else ""))
    perf = report.get("performance") or {}
    classification = report.get("task") == "classification"
    metric = metric or ("accuracy" if classification else "r2")
    overall = perf.get("overall")
    if not overall or perf.get("labelled", 0) < min_labels:
        notes.append(f"performance not judged: {perf.get('labelled', 0)} labelled predictions "
                     f"(at least {min_labels} needed)")
        return problems, notes
    value = overall.get(metric)
    if value is None:
        notes.append(f"performance not judged: no {metric} for this model's labels")
        return problems, notes
    lower_is_better = metric in ("mae", "rmse")
    baseline = report.get("baseline_metrics", {}).get(metric)
    if isinstance(baseline, int | float):
        drop = (value - baseline) if lower_is_better else (baseline - value)
        if drop > max_drop:
            problems.append(f"{metric} {value:.4g} is {drop:.4g} worse than at training ({baseline:.4g}); "
                            f"allowed: {max_drop:g}")
    elif minimum is None:
        notes.append(f"no {metric} recorded in the bundle to compare with; give --min")
    if minimum is not None and (value > minimum if lower_is_better else value < minimum):
        problems.append(f"{metric} {value:.4g} is {'above' if lower_is_better else 'below'} {minimum:g}")
    return problems, notes
