"""Data quality of logged inputs against the reference: missing values, values outside the reference range,
categories the reference never saw, and values converted to the column's type, as counts and shares."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from berth.reference import OTHER


def feature_quality(values: pd.Series, reference: dict[str, Any], coerced: int = 0) -> dict[str, Any]:
    n = len(values)
    result: dict[str, Any] = {"type": reference.get("type", "numeric"), "count": n}
    reference_count = reference.get("count") or 0
    if reference.get("type", "numeric") == "numeric":
        array = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = int(np.sum(~np.isfinite(array)))
        present = array[np.isfinite(array)]
        low, high = reference.get("min"), reference.get("max")
        outside = int(np.sum((present < low) | (present > high))) if low is not None else 0
        result.update(out_of_range=outside, out_of_range_share=_share(outside, n),
                      range=[low, high], current_range=[float(present.min()), float(present.max())]
                      if len(present) else None)
    else:
        missing = int(values.isna().sum())
        frequencies = reference.get("frequencies", {})
        complete = OTHER not in frequencies  # with an "other" bucket, an unknown value may be a rare known one
        present = values.dropna().astype(str)
        unseen_mask = ~present.isin(list(frequencies)) if complete else pd.Series(False, index=present.index)
        unseen = int(unseen_mask.sum())
        result.update(unseen=unseen, unseen_share=_share(unseen, n),
                      unseen_values=sorted(present[unseen_mask].unique().tolist())[:20])
    result.update(missing=missing, missing_share=_share(missing, n),
                  reference_missing_share=_share(reference.get("missing", 0), reference_count),
                  coerced=coerced, coerced_share=_share(coerced, n))
    return result


def data_quality(frame: pd.DataFrame, reference: dict[str, Any],
                 coerced: dict[str, int] | None = None) -> dict[str, Any]:
    """Quality per reference feature found in ``frame``; ``coerced`` counts the coerced values per feature."""
    counts = coerced or {}
    features = {name: feature_quality(frame[name], stats, int(counts.get(name, 0)))
                for name, stats in reference.get("features", {}).items() if name in frame.columns}
    return with_totals(features, len(frame))


def with_totals(features: dict[str, dict[str, Any]], rows: int) -> dict[str, Any]:
    """The quality section: per feature, and totals over all cells."""
    totals = {key: sum(f.get(key, 0) for f in features.values())
              for key in ("missing", "out_of_range", "unseen", "coerced")}
    cells = rows * max(len(features), 1)
    return {"rows": rows, "features": features,
            "totals": {**totals, **{f"{k}_share": _share(v, cells) for k, v in totals.items()}}}


def _share(part: float, whole: float) -> float:
    return float(part) / whole if whole else 0.0
