"""The drift rule picks the right test, and each test detects a shift and stays quiet without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from berth.errors import UsageError
from berth.monitoring.drift import (
    DriftConfig,
    FeatureRule,
    choose_method,
    dataset_drift,
    feature_drift,
    ks_pvalue,
    prediction_drift,
    reference_cdf,
)
from berth.reference import feature_stats, reference_stats

RNG = np.random.default_rng(42)
NORMAL = feature_stats(pd.Series(RNG.normal(10, 2, 20_000)))
COLORS = feature_stats(pd.Series(RNG.choice(["red", "green", "blue"], 20_000, p=[0.5, 0.3, 0.2])))


def test_the_rule_picks_by_the_data_compared() -> None:
    assert choose_method("numeric", 1000) == choose_method("numeric", 100_000) == "ks"
    assert choose_method("numeric", 1000, discrete=True) == "chisquare"
    assert choose_method("categorical", 1000) == choose_method("categorical", 5000) == "chisquare"
    counts = feature_stats(pd.Series(np.random.default_rng(0).poisson(2, 5000).astype(float)))
    assert feature_drift("k", np.random.default_rng(1).poisson(2, 800).astype(float), counts).method == "chisquare"
    assert feature_drift("x", np.random.default_rng(1).normal(10, 2, 800), NORMAL).method == "ks"


@pytest.mark.parametrize(("n", "method"), [(500, "ks"), (5000, "ks")])
def test_numeric_same_distribution_does_not_drift(n: int, method: str) -> None:
    result = feature_drift("x", np.random.default_rng(0).normal(10, 2, n), NORMAL)
    assert (result.method, result.drifted) == (method, False)


def test_ks_against_the_rebuilt_reference_keeps_its_false_alarm_rate() -> None:
    """p < 0.05 on samples of the reference distribution itself should happen about 5 % of the time."""
    alarms = sum(ks_pvalue(np.random.default_rng(seed).normal(10, 2, 500), NORMAL) < 0.05 for seed in range(100))
    assert alarms <= 12


@pytest.mark.parametrize(("n", "method"), [(500, "ks"), (5000, "ks")])
def test_numeric_shift_drifts(n: int, method: str) -> None:
    result = feature_drift("x", np.random.default_rng(1).normal(10.8, 2, n), NORMAL)  # 0.4 std
    assert (result.method, result.drifted) == (method, True)


@pytest.mark.parametrize(("n", "method"), [(300, "chisquare"), (5000, "chisquare")])
def test_categorical_same_and_shifted(n: int, method: str) -> None:
    rng = np.random.default_rng(3)
    same = feature_drift("c", rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]), COLORS)
    moved = feature_drift("c", rng.choice(["red", "green", "blue"], n, p=[0.2, 0.3, 0.5]), COLORS)
    assert (same.method, same.drifted) == (method, False)
    assert (moved.method, moved.drifted) == (method, True)


def test_unseen_categories_drift() -> None:
    result = feature_drift("c", ["purple"] * 100 + ["red"] * 100, COLORS)
    assert result.drifted and "purple" in result.plot["categories"]


def test_ks_handles_ties_of_discrete_data() -> None:
    rng = np.random.default_rng(5)
    reference = feature_stats(pd.Series(rng.integers(0, 5, 10_000).astype(float)))
    assert ks_pvalue(rng.integers(0, 5, 800).astype(float), reference) > 0.05
    assert ks_pvalue(rng.integers(1, 6, 800).astype(float), reference) < 0.001


def test_reference_cdf_follows_the_percentiles() -> None:
    percentiles = np.asarray(NORMAL["percentiles"])
    assert reference_cdf(np.array([percentiles[50]]), percentiles)[0] == pytest.approx(0.5)
    assert reference_cdf(np.array([-1e9, 1e9]), percentiles).tolist() == [0.0, 1.0]


def test_psi_override_per_feature_and_threshold() -> None:
    config = DriftConfig(features={"x": FeatureRule("psi", 0.5)})
    values = np.random.default_rng(1).normal(10.8, 2, 5000)
    result = feature_drift("x", values, NORMAL, config)
    assert result.method == "psi" and result.threshold == 0.5
    assert result.score == pytest.approx(feature_drift("x", values, NORMAL, DriftConfig(
        features={"x": FeatureRule("psi")})).score)
    assert result.drifted is (result.score > 0.5)


def test_rules_parse_and_reject_nonsense() -> None:
    assert FeatureRule.parse("petal length (cm)=psi:0.3") == ("petal length (cm)", FeatureRule("psi", 0.3))
    assert FeatureRule.parse("x=:0.2") == ("x", FeatureRule(None, 0.2))
    with pytest.raises(UsageError, match="unknown drift method"):
        FeatureRule.parse("x=magic")
    with pytest.raises(UsageError, match="does not apply"):
        feature_drift("c", ["red"] * 50, COLORS, DriftConfig(features={"c": FeatureRule("ks")}))


def test_too_few_values_are_not_judged() -> None:
    result = feature_drift("x", [1.0, 2.0], NORMAL)
    assert result.method is None and not result.drifted and "only 2 values" in result.reason


def test_dataset_drift_follows_the_share_rule() -> None:
    rng = np.random.default_rng(9)
    train = pd.DataFrame({name: rng.normal(0, 1, 5000) for name in "abcd"})
    reference = reference_stats(train)
    current = pd.DataFrame({name: rng.normal(0, 1, 3000) for name in "abcd"})
    current["a"] += 1.0
    one = dataset_drift(current, reference)
    assert one.drifted_features == ["a"] and one.share == 0.25 and not one.drifted
    current["b"] += 1.0
    current["c"] += 1.0
    three = dataset_drift(current, reference)
    assert three.share == 0.75 and three.drifted
    assert dataset_drift(current.assign(b=current["b"] - 1, c=current["c"] - 1), reference,
                         DriftConfig(dataset_share=0.2)).drifted


def test_prediction_drift_of_classes_compares_bins() -> None:
    reference = feature_stats(pd.Series(np.repeat([0, 1, 2], [500, 300, 200])))
    same = prediction_drift(np.repeat([0, 1, 2], [250, 150, 100]), reference, classification=True)
    moved = prediction_drift(np.repeat([0, 1, 2], [100, 150, 250]), reference, classification=True)
    assert (same.kind, same.method, same.drifted) == ("binned", "chisquare", False)
    assert moved.drifted
