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


def normalize_labels(values: pd.Series) -> np.ndarray:
    """:func:`normalize_label` over a whole column, vectorised: numbers that are whole become their integer's
    text; other values keep their own text."""
    values = pd.Series(values).reset_index(drop=True)
    if values.dtype == bool:
        return values.map(normalize_label).astype(str).to_numpy()
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    whole = np.isfinite(numbers) & (np.floor(numbers) == numbers) & (np.abs(numbers) < 2 ** 53)
    if whole.all():
        return numbers.astype(np.int64).astype(str)
    result = values.astype(str).to_numpy(dtype=object)
    result[whole] = numbers[whole].astype(np.int64).astype(str)
    rest = ~whole
    if rest.any():
        result[rest] = [str(normalize_label(v)) for v in values[rest].tolist()]
    return result.astype(str)


def classification_metrics(labels: pd.Series, predictions: pd.Series, probabilities: Any = None,
                           classes: list[Any] | None = None) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (binary for two classes, else macro; zero when undefined) and ROC AUC
    (one-vs-rest macro for more classes), as scikit-learn defines them, computed with NumPy: importing
    ``sklearn.metrics`` (and scipy.stats with it) took longer than a report over a million rows."""
    return classification_scores(*encode(normalize_labels(labels), normalize_labels(predictions)),
                                 probability_matrix(probabilities), classes)


def encode(truth: np.ndarray, guess: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised labels and predictions as codes into their sorted distinct values: (codes, codes, values).
    Metrics then count integers (``bincount``) instead of comparing strings once per class and bucket."""
    codes, vocabulary = pd.factorize(np.concatenate([truth, guess]), sort=True)
    return codes[: len(truth)], codes[len(truth):], np.asarray(vocabulary, dtype=str)


def classification_scores(truth: np.ndarray, guess: np.ndarray, vocabulary: np.ndarray, matrix: np.ndarray | None,
                          classes: list[Any] | None) -> dict[str, Any]:
    """:func:`classification_metrics` of labels and predictions already encoded (:func:`encode`)."""
    size = len(vocabulary)
    actual, predicted = np.bincount(truth, minlength=size), np.bincount(guess, minlength=size)
    correct = truth == guess
    hits = np.bincount(truth[correct], minlength=size).astype("float64")
    seen = np.flatnonzero(actual + predicted)
    names_seen = vocabulary[seen].tolist()
    code = {name: i for i, name in enumerate(vocabulary.tolist())}
    average = "binary" if len(seen) <= 2 and classes and len(classes) == 2 else "macro"
    positive = None
    if average == "binary":
        positive = normalize_label(classes[-1]) if classes else str(vocabulary[truth.max()])
        if positive not in set(names_seen):
            average = "macro"
    with np.errstate(divide="ignore", invalid="ignore"):
        precisions = np.where(predicted > 0, hits / predicted, 0.0)
        recalls = np.where(actual > 0, hits / actual, 0.0)
        f1s = np.where(precisions + recalls > 0, 2 * precisions * recalls / (precisions + recalls), 0.0)
    if average == "binary":
        chosen = code[str(positive)]
        precision, recall, f1 = precisions[chosen], recalls[chosen], f1s[chosen]
    elif len(seen):
        precision, recall, f1 = precisions[seen].mean(), recalls[seen].mean(), f1s[seen].mean()
    else:
        precision, recall, f1 = 0.0, 0.0, 0.0
    result: dict[str, Any] = {"count": len(truth), "accuracy": float(np.mean(correct)) if len(truth) else 0.0,
                              "precision": float(precision), "recall": float(recall), "f1": float(f1),
                              "average": average, "roc_auc": None}
    if matrix is not None and classes and len(matrix) == len(truth):
        names = [normalize_label(c) for c in classes]
        present = set(vocabulary[np.flatnonzero(actual)].tolist())

        def positives(name: str) -> np.ndarray:
            return truth == code.get(name, -1)

        if matrix.ndim == 2 and matrix.shape[1] == len(names) and len(present) >= 2 and present <= set(names):
            if len(names) == 2:
                result["roc_auc"] = roc_auc(positives(names[1]), matrix[:, 1])
            else:
                columns = [names.index(c) for c in names if c in present]
                sub = matrix[:, columns]
                sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
                result["roc_auc"] = float(np.mean([roc_auc(positives(names[i]), sub[:, k])
                                                   for k, i in enumerate(columns)])) if len(columns) > 2 \
                    else roc_auc(positives(names[columns[1]]), sub[:, 1])
    return result


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """The area under the ROC curve: the Mann-Whitney U of the scores, ties at half (average ranks)."""
    positive = np.asarray(positive, dtype=bool)
    score = np.asarray(score, dtype="float64")
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    if not n_positive or not n_negative:
        return None
    order = np.argsort(score, kind="mergesort")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def probability_matrix(probabilities: Any) -> np.ndarray | None:
    """Class probabilities as a rows x classes matrix; None when some row has none."""
    if probabilities is None:
        return None
    if isinstance(probabilities, np.ndarray) and probabilities.ndim == 2:
        return probabilities
    series = pd.Series(probabilities)
    if not len(series) or series.isna().any():
        return None
    try:
        return np.array(series.tolist(), dtype="float64")
    except ValueError:  # rows of different lengths
        return None


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
                freq: str | None = None, probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics over ``joined`` (columns ``time``, ``prediction``, ``label``, maybe ``probabilities``), overall
    and per time bucket. ``probabilities``: a rows x classes matrix aligned with ``joined``'s rows, in place of
    the column (from :mod:`berth.monitoring.labels`). Labels and predictions are normalised once, not per
    bucket."""
    joined = joined.reset_index(drop=True)
    keep = joined["label"].notna().to_numpy()
    if probabilities is None and "probabilities" in joined:
        probabilities = probability_matrix(joined["probabilities"])
    joined = joined[keep].reset_index(drop=True)
    if probabilities is not None:
        probabilities = probabilities[keep] if len(probabilities) == len(keep) else None
    if joined.empty:
        return {"labelled": 0, "overall": None, "buckets": [], "task": "classification" if classification
                else "regression"}
    if classification:
        truth, guess, vocabulary = encode(normalize_labels(joined["label"]), normalize_labels(joined["prediction"]))

    def compute(positions: np.ndarray | None) -> dict[str, Any]:
        if classification:
            if positions is None:
                return classification_scores(truth, guess, vocabulary, probabilities, classes)
            return classification_scores(truth[positions], guess[positions], vocabulary,
                                         probabilities[positions] if probabilities is not None else None, classes)
        part = joined if positions is None else joined.iloc[positions]
        return regression_metrics(part["label"], part["prediction"])

    freq = freq or bucket_size(joined["time"].min(), joined["time"].max())
    groups = joined.groupby(joined["time"].dt.floor(freq)).indices
    buckets = [{"start": start.isoformat(), **compute(positions)} for start, positions in sorted(groups.items())
               if len(positions)]
    return {"labelled": len(joined), "task": "classification" if classification else "regression",
            "overall": compute(None), "bucket": freq, "buckets": buckets}
