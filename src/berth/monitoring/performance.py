"""Model performance once true labels arrive: classification or regression metrics, overall and per bucket."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc")
REGRESSION = ("mae", "rmse", "r2")


def normalize_label(value: Any) -> Any:
    """Labels and predictions compared as text for classifiers: ``1``, ``1.0`` and ``"1"`` are one class."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and math.isfinite(number) else text


def classification_metrics(labels: pd.Series, predictions: pd.Series, probabilities: pd.Series | None = None,
                           classes: list[Any] | None = None) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    truth = labels.map(normalize_label).astype(str).to_numpy()
    guess = predictions.map(normalize_label).astype(str).to_numpy()
    average = "binary" if len(set(truth) | set(guess)) <= 2 and classes and len(classes) == 2 else "macro"
    options: dict[str, Any] = {"average": average, "zero_division": 0}
    if average == "binary":
        options["pos_label"] = normalize_label(classes[-1]) if classes else sorted(set(truth))[-1]
        if options["pos_label"] not in set(truth) | set(guess):
            options = {"average": "macro", "zero_division": 0}
    precision, recall, f1, _ = precision_recall_fscore_support(truth, guess, **options)
    result: dict[str, Any] = {"count": len(truth), "accuracy": float(accuracy_score(truth, guess)),
                              "precision": float(precision), "recall": float(recall), "f1": float(f1),
                              "average": options["average"], "roc_auc": None}
    if probabilities is not None and classes and probabilities.notna().all() and len(probabilities):
        matrix = np.array(probabilities.tolist(), dtype="float64")
        names = [normalize_label(c) for c in classes]
        present = set(truth)
        if matrix.ndim == 2 and matrix.shape[1] == len(names) and len(present) >= 2 and present <= set(names):
            if len(names) == 2:
                result["roc_auc"] = float(roc_auc_score(truth == names[1], matrix[:, 1]))
            else:
                columns = [names.index(c) for c in names if c in present]
                sub = matrix[:, columns]
                sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
                labels_order = [names[i] for i in columns]
                result["roc_auc"] = float(roc_auc_score(truth, sub if len(columns) > 2 else sub[:, 1],
                                                        multi_class="ovr", labels=labels_order))
    return result


def regression_metrics(labels: pd.Series, predictions: pd.Series) -> dict[str, Any]:
    truth = pd.to_numeric(labels, errors="coerce").to_numpy(dtype="float64")
    guess = pd.to_numeric(predictions, errors="coerce").to_numpy(dtype="float64")
    keep = np.isfinite(truth) & np.isfinite(guess)
    truth, guess = truth[keep], guess[keep]
    if not len(truth):
        return {"count": 0, "mae": None, "rmse": None, "r2": None}
    error = guess - truth
    spread = float(np.sum((truth - truth.mean()) ** 2))
    return {"count": len(truth), "mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2))),
            "r2": float(1 - np.sum(error ** 2) / spread) if spread > 0 else None}


def bucket_size(start: pd.Timestamp, end: pd.Timestamp) -> str:
    """A pandas frequency giving a readable number of buckets for the span."""
    span = (end - start).total_seconds()
    for limit, freq in ((2 * 3600, "5min"), (12 * 3600, "30min"), (3 * 86400, "1h"), (60 * 86400, "1D")):
        if span <= limit:
            return freq
    return "7D"


def performance(joined: pd.DataFrame, classification: bool, classes: list[Any] | None = None,
                freq: str | None = None) -> dict[str, Any]:
    """Metrics over ``joined`` (columns ``time``, ``prediction``, ``label``, maybe ``probabilities``), overall
    and per time bucket."""
    joined = joined[joined["label"].notna()]
    if joined.empty:
        return {"labelled": 0, "overall": None, "buckets": [], "task": "classification" if classification
                else "regression"}

    def compute(part: pd.DataFrame) -> dict[str, Any]:
        if classification:
            probabilities = part.get("probabilities")
            return classification_metrics(part["label"], part["prediction"], probabilities, classes)
        return regression_metrics(part["label"], part["prediction"])

    freq = freq or bucket_size(joined["time"].min(), joined["time"].max())
    buckets = [{"start": start.isoformat(), **compute(part)}
               for start, part in joined.groupby(joined["time"].dt.floor(freq)) if len(part)]
    return {"labelled": len(joined), "task": "classification" if classification else "regression",
            "overall": compute(joined), "bucket": freq, "buckets": buckets}
