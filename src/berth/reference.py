"""Reference statistics of the training data, kept in the manifest for monitoring.

Exact and compact: counts are exact; a numeric feature keeps its moments, 101 percentiles (enough to rebuild its
distribution function for a Kolmogorov-Smirnov test) and a histogram of ``HISTOGRAM_BINS`` equal-width bins
(for PSI and plots); a categorical feature keeps the frequency of each of its ``MAX_CATEGORIES`` most common
values and the count of the rest.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pandas as pd

from berth.signature_inference import is_one_dimensional, sample_to_frame

HISTOGRAM_BINS = 20
MAX_CATEGORIES = 100
PERCENTILES = np.linspace(0, 100, 101)
OTHER = "__other__"


def numeric_stats(values: pd.Series) -> dict[str, Any]:
    array = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    present = array[np.isfinite(array)]
    stats: dict[str, Any] = {"type": "numeric", "count": len(array), "missing": int(len(array) - len(present))}
    if len(present) == 0:
        return stats
    counts, edges = np.histogram(present, bins=HISTOGRAM_BINS)
    stats.update(
        min=float(present.min()),
        max=float(present.max()),
        mean=float(present.mean()),
        std=float(present.std(ddof=1)) if len(present) > 1 else 0.0,
        percentiles=[float(p) for p in np.percentile(present, PERCENTILES)],
        histogram={"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    )
    return stats


def categorical_stats(values: pd.Series) -> dict[str, Any]:
    present = values.dropna()
    frequencies = present.astype(str).value_counts()
    top = frequencies.iloc[:MAX_CATEGORIES]
    stats: dict[str, Any] = {
        "type": "categorical",
        "count": len(values),
        "missing": int(len(values) - len(present)),
        "unique": len(frequencies),
        "frequencies": {str(k): int(v) for k, v in top.items()},
    }
    rest = int(frequencies.iloc[MAX_CATEGORIES:].sum())
    if rest:
        stats["frequencies"][OTHER] = rest
    return stats


def feature_stats(values: pd.Series) -> dict[str, Any]:
    is_numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)
    return numeric_stats(values) if is_numeric else categorical_stats(values)


def reference_stats(reference: Any) -> dict[str, Any]:
    """Statistics per feature of a training set, plus its row count and fingerprint."""
    if is_one_dimensional(reference):
        frame = pd.DataFrame({getattr(reference, "name", None) or "input": list(reference)})
    else:
        frame = sample_to_frame(reference)
    return {
        "rows": len(frame),
        "fingerprint": fingerprint(frame),
        "features": {str(name): feature_stats(frame[name]) for name in frame.columns},
    }


def prediction_stats(predictions: Any) -> dict[str, Any]:
    """Distribution of the model's outputs on the reference data: the baseline for prediction drift."""
    array = np.asarray(predictions)
    if array.ndim > 1:
        array = array.reshape(len(array), -1)[:, 0]
    return feature_stats(pd.Series(array))


def fingerprint(frame: pd.DataFrame) -> str:
    """sha256 of the data's values, column names and dtypes: the same data gives the same fingerprint."""
    digest = hashlib.sha256()
    digest.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return "sha256:" + digest.hexdigest()

