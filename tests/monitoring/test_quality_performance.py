"""Data quality against the reference, and performance once labels arrive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from berth.monitoring.quality import data_quality
from berth.monitoring.scoring import classification_metrics, normalize_label, performance, regression_metrics
from berth.reference import reference_stats


def test_quality_counts_missing_out_of_range_unseen_and_coerced() -> None:
    train = pd.DataFrame({"size": np.linspace(0, 10, 101), "color": ["red", "blue"] * 50 + ["red"]})
    reference = reference_stats(train)
    current = pd.DataFrame({"size": [1.0, np.nan, 11.0, -1.0, 5.0], "color": ["red", None, "green", "blue", "pink"]})
    quality = data_quality(current, reference, {"size": 2})
    size, color = quality["features"]["size"], quality["features"]["color"]
    assert (size["missing"], size["out_of_range"], size["coerced"]) == (1, 2, 2)
    assert size["out_of_range_share"] == pytest.approx(0.4) and size["range"] == [0.0, 10.0]
    assert (color["missing"], color["unseen"], color["unseen_values"]) == (1, 2, ["green", "pink"])
    assert quality["totals"]["missing"] == 2 and quality["totals"]["unseen"] == 2
    assert quality["totals"]["missing_share"] == pytest.approx(2 / 10)


def test_labels_compare_across_int_float_and_text() -> None:
    assert normalize_label(1) == normalize_label(1.0) == normalize_label("1") == normalize_label("1.0") == "1"
    assert normalize_label("setosa") == "setosa" and normalize_label(True) == "True"
    assert normalize_label(float("nan")) is None


def test_classification_metrics_with_30_percent_wrong_labels() -> None:
    truth = pd.Series(np.tile([0, 1, 2], 100))
    wrong = truth.copy()
    wrong[::10] = (wrong[::10] + 1) % 3
    wrong[1::10] = (wrong[1::10] + 1) % 3
    wrong[2::10] = (wrong[2::10] + 1) % 3
    perfect = pd.Series([[1.0 if c == t else 0.0 for c in range(3)] for t in truth])
    right = classification_metrics(truth, truth, perfect, [0, 1, 2])
    assert right["accuracy"] == 1.0 and right["f1"] == 1.0 and right["roc_auc"] == 1.0
    assert classification_metrics(wrong, truth, perfect, [0, 1, 2])["accuracy"] == pytest.approx(0.7)


def test_binary_metrics_use_the_positive_class() -> None:
    truth = pd.Series(["spam", "spam", "ham", "ham"])
    guess = pd.Series(["spam", "ham", "ham", "ham"])
    result = classification_metrics(truth, guess, None, ["ham", "spam"])
    assert result["average"] == "binary"
    assert (result["precision"], result["recall"]) == (1.0, 0.5)


def test_regression_metrics() -> None:
    result = regression_metrics(pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([1.0, 2.0, 3.0, 6.0]))
    assert result["mae"] == pytest.approx(0.5)
    assert result["rmse"] == pytest.approx(1.0)
    assert result["r2"] == pytest.approx(1 - 4 / 5)


def test_performance_per_time_bucket() -> None:
    times = pd.to_datetime(["2024-05-01T10:00Z", "2024-05-01T10:10Z", "2024-05-01T11:00Z", "2024-05-01T11:05Z"])
    joined = pd.DataFrame({"time": times, "prediction": [1, 1, 0, 0], "label": ["1", "0", "0", None]})
    result = performance(joined, classification=True, classes=[0, 1], freq="1h")
    assert result["labelled"] == 3
    assert [b["accuracy"] for b in result["buckets"]] == [0.5, 1.0]
    assert result["overall"]["accuracy"] == pytest.approx(2 / 3)


def test_metrics_agree_with_scikit_learn() -> None:
    """berth computes the metrics with NumPy (sklearn.metrics is slow to import); they must be sklearn's."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

    rng = np.random.default_rng(4)
    for classes in ([0, 1], [0, 1, 2], ["a", "b", "c", "d"]):
        truth = rng.choice(classes, 500)
        guess = np.where(rng.random(500) < 0.7, truth, rng.choice(classes, 500))
        scores = rng.dirichlet(np.ones(len(classes)), 500)
        scores[np.arange(500), [classes.index(t) for t in truth]] += 0.3  # informative, with ties of rounding
        scores = np.round(scores / scores.sum(axis=1, keepdims=True), 2)
        result = classification_metrics(pd.Series(truth), pd.Series(guess), pd.Series(list(scores)), classes)
        average = "binary" if len(classes) == 2 else "macro"
        options = {"pos_label": str(classes[-1])} if average == "binary" else {}
        expected = precision_recall_fscore_support(truth.astype(str), guess.astype(str), average=average,
                                                   zero_division=0, **options)
        assert result["accuracy"] == pytest.approx(accuracy_score(truth, guess))
        assert [result["precision"], result["recall"], result["f1"]] == pytest.approx(list(expected[:3]))
        auc = roc_auc_score(truth == classes[1], scores[:, 1]) if len(classes) == 2 else roc_auc_score(
            truth.astype(str), scores / scores.sum(axis=1, keepdims=True), multi_class="ovr",
            labels=[str(c) for c in classes])
        assert result["roc_auc"] == pytest.approx(auc)
