"""Reference statistics: exact counts, compact distributions, a stable fingerprint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from berth.reference import HISTOGRAM_BINS, MAX_CATEGORIES, OTHER, fingerprint, reference_stats


def test_numeric_feature_statistics_are_exact() -> None:
    values = pd.Series([1.0, 2.0, 3.0, 4.0, None, 10.0])
    stats = reference_stats(pd.DataFrame({"x": values}))["features"]["x"]
    assert stats["type"] == "numeric"
    assert (stats["count"], stats["missing"], stats["min"], stats["max"]) == (6, 1, 1.0, 10.0)
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["std"] == pytest.approx(np.std([1, 2, 3, 4, 10], ddof=1))
    assert len(stats["percentiles"]) == 101
    assert stats["percentiles"][0] == 1.0 and stats["percentiles"][50] == 3.0 and stats["percentiles"][100] == 10.0
    histogram = stats["histogram"]
    assert len(histogram["counts"]) == HISTOGRAM_BINS and sum(histogram["counts"]) == 5
    assert histogram["edges"][0] == 1.0 and histogram["edges"][-1] == 10.0


def test_categorical_feature_frequencies_with_an_other_bucket() -> None:
    values = [f"c{i}" for i in range(MAX_CATEGORIES + 5)] + ["c0"] * 10 + [None]
    stats = reference_stats(pd.DataFrame({"city": values}))["features"]["city"]
    assert stats["type"] == "categorical"
    assert (stats["count"], stats["missing"], stats["unique"]) == (len(values), 1, MAX_CATEGORIES + 5)
    assert stats["frequencies"]["c0"] == 11
    assert stats["frequencies"][OTHER] == 5
    assert sum(stats["frequencies"].values()) == len(values) - 1


def test_booleans_count_as_categories() -> None:
    stats = reference_stats(pd.DataFrame({"flag": [True, False, True]}))["features"]["flag"]
    assert stats["frequencies"] == {"True": 2, "False": 1}


def test_fingerprint_is_stable_and_sensitive() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]})
    assert fingerprint(frame) == fingerprint(frame.copy())
    assert fingerprint(frame) != fingerprint(frame.assign(a=[1.0, 2.5]))
    assert fingerprint(frame) != fingerprint(frame.rename(columns={"a": "z"}))


def test_all_missing_numeric_feature() -> None:
    stats = reference_stats(pd.DataFrame({"x": [np.nan, np.nan]}))["features"]["x"]
    assert stats == {"type": "numeric", "count": 2, "missing": 2}
