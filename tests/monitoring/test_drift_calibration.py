"""Calibration of the default drift tests on fixed-seed scenarios: under no drift the false-alarm rate stays near
the 5 % level whatever the reference's and the window's sizes (the old one-sample rule raised 71 % of features
for a 150-row reference and a 500-row window), and real shifts are found. Rates, not timings; the full grid,
beside Evidently, is bench/drift_calibration.py."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from berth.monitoring.drift import dataset_drift, feature_drift
from berth.reference import feature_stats, reference_stats

Draw = Callable[[np.random.Generator, int], np.ndarray]
REPEATS = 150
SHARES = [0.5, 0.3, 0.15, 0.05]
SHIFTED = [0.4, 0.3, 0.15, 0.15]  # 10 points moved from the commonest category to the rarest


def normal(shift: float = 0.0) -> Draw:
    return lambda rng, n: rng.normal(shift, 1.0, n)


def counts(rate: float = 2.0) -> Draw:  # heavy ties: a handful of distinct values
    return lambda rng, n: rng.poisson(rate, n).astype(float)


def categories(shares: list[float]) -> Draw:
    return lambda rng, n: rng.choice(np.array(list("abcd"), dtype=object), n, p=shares)


def alarm_rate(reference: Draw, current: Draw, n_reference: int, window: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(REPEATS):
        stats = feature_stats(pd.Series(reference(rng, n_reference)))
        alarms += feature_drift("x", current(rng, window), stats).drifted
    return alarms / REPEATS


@pytest.mark.parametrize(("draw", "n_reference", "window"), [
    (normal(), 150, 500), (normal(), 150, 100), (normal(), 20_000, 5000), (counts(), 150, 500),
    (counts(), 1000, 5000), (categories(SHARES), 1000, 5000), (categories(SHARES), 150, 100),
], ids=["numeric-150x500", "numeric-150x100", "numeric-20000x5000", "ties-150x500", "ties-1000x5000",
        "categorical-1000x5000", "categorical-150x100"])
def test_no_drift_rarely_alarms(draw: Draw, n_reference: int, window: int) -> None:
    assert alarm_rate(draw, draw, n_reference, window, seed=n_reference + window) <= 0.06


@pytest.mark.parametrize(("reference", "current", "n_reference", "window", "least"), [
    (normal(), normal(0.5), 150, 500, 0.8),  # half a standard deviation
    (normal(), normal(0.25), 1000, 5000, 0.95),
    (counts(2.0), counts(2.6), 1000, 500, 0.95),
    (categories(SHARES), categories(SHIFTED), 1000, 5000, 0.95),  # ~52 % with the old Jensen-Shannon rule
    (categories(SHARES), categories(SHIFTED), 1000, 500, 0.8),
], ids=["numeric-0.5sd", "numeric-0.25sd-large", "ties-rate", "categorical-10pt-large", "categorical-10pt"])
def test_real_shifts_are_found(reference: Draw, current: Draw, n_reference: int, window: int, least: float) -> None:
    assert alarm_rate(reference, current, n_reference, window, seed=7) >= least


def test_dataset_drift_false_alarms_with_several_features() -> None:
    rng = np.random.default_rng(11)
    alarms = 0
    for _ in range(100):
        train = pd.DataFrame({"a": rng.normal(0, 1, 150), "b": rng.normal(0, 1, 150),
                              "c": rng.poisson(2, 150).astype(float),
                              "d": rng.choice(np.array(list("abcd"), dtype=object), 150, p=SHARES)})
        window = pd.DataFrame({"a": rng.normal(0, 1, 500), "b": rng.normal(0, 1, 500),
                               "c": rng.poisson(2, 500).astype(float),
                               "d": rng.choice(np.array(list("abcd"), dtype=object), 500, p=SHARES)})
        alarms += dataset_drift(window, reference_stats(train)).drifted
    assert alarms <= 5
