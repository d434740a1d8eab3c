"""Drift over time: the window cut into buckets (an hour or a day, chosen by the window's span), each bucket's
drift per feature and for the prediction, which buckets show dataset drift, and when it began.

A whole-window verdict hides a day of drift among weeks of normal traffic; the timeline shows it. Each bucket is
judged with the same tests and rule as the whole window (:mod:`berth.monitoring.drift`), on its own values.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from berth.monitoring.drift import Counted, DriftConfig, combine, dataset_drift, feature_drift, prediction_drift

MAX_BUCKETS = 60


def timeline_bucket(start: pd.Timestamp, end: pd.Timestamp, requested: dt.timedelta | None = None) -> str:
    """The bucket: ``requested`` if given, else an hour for spans up to two days, a day beyond."""
    if requested is not None:
        seconds = max(int(requested.total_seconds()), 60)
        for unit, size in (("D", 86400), ("h", 3600), ("min", 60)):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    return "1h" if (end - start) <= pd.Timedelta(days=2) else "1D"


def drift_timeline(times: pd.Series, frame: pd.DataFrame, predictions: pd.Series, reference: dict[str, Any],
                   classification: bool, config: DriftConfig | None = None,
                   bucket: dt.timedelta | None = None) -> dict[str, Any]:
    """Per bucket: each feature's and the prediction's drift (score, severity, drifted, n) and dataset drift;
    ``first_drift`` is the first bucket with dataset drift, ``drift_since`` the start of the run of drifted
    buckets that reaches the latest one (None when the latest bucket is fine)."""
    config = config or DriftConfig()
    freq = timeline_bucket(times.iloc[0], times.iloc[-1], bucket)
    starts = times.dt.floor(freq)
    groups = pd.Series(np.arange(len(times))).groupby(starts.to_numpy()).indices
    keys = sorted(groups)[-MAX_BUCKETS:]
    names = [n for n in reference.get("features", {}) if n in frame.columns]
    results = []
    for key in keys:
        index = groups[key]
        results.append((dataset_drift(frame.iloc[index], reference, config),
                        prediction_drift(predictions.iloc[index], reference.get("predictions"), classification,
                                         config)))
    labels = [pd.Timestamp(key).tz_localize("UTC").isoformat() if pd.Timestamp(key).tzinfo is None
              else pd.Timestamp(key).isoformat() for key in keys]
    return assemble(freq, labels, names, results)


def timeline_from_scan(scan: Any, reference: dict[str, Any], classification: bool, config: DriftConfig,
                       freq: str) -> dict[str, Any]:
    """The same, from the counts of a streaming scan (:mod:`berth.monitoring.scan`)."""
    starts = scan.bucket_starts()[-MAX_BUCKETS:]
    names = list(scan.features)
    results = []
    for index, _ in starts:
        features = [feature_drift(name, counts.counted(index), reference["features"][name], config)
                    for name, counts in scan.features.items()]
        predictions = scan.prediction.counted(index) if scan.prediction is not None else Counted(0)
        results.append((combine(features, config), prediction_drift(predictions, reference.get("predictions"),
                                                                     classification, config)))
    return assemble(freq, [label for _, label in starts], names, results)


def assemble(freq: str, labels: list[str], names: list[str], results: list[tuple[Any, Any]]) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in [*names, "prediction"]}
    dataset: list[bool] = []
    for result, output in results:
        for feature in result.features:
            rows[feature.feature].append(cell(feature))
        rows["prediction"].append(cell(output))
        dataset.append(result.drifted)
    first = next((i for i, drifted in enumerate(dataset) if drifted), None)
    since = None
    if dataset and dataset[-1]:
        since = len(dataset) - 1
        while since > 0 and dataset[since - 1]:
            since -= 1
    return {"bucket": freq, "starts": labels, "features": rows, "dataset_drift": dataset,
            "first_drift": labels[first] if first is not None else None,
            "drift_since": labels[since] if since is not None else None,
            "latest": {"start": labels[-1] if labels else None, "dataset_drift": bool(dataset and dataset[-1]),
                       "drifted_features": [n for n in names if rows[n] and rows[n][-1]["drifted"]]}}


def cell(feature: Any) -> dict[str, Any]:
    from berth.monitoring.plots import severity

    data = feature.to_dict()
    judged = data["method"] is not None
    return {"score": data["score"], "severity": severity(data) if judged else None, "drifted": data["drifted"],
            "n": data["n"], "method": data["method"]}
