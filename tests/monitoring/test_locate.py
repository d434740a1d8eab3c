"""The lookup-table locator gives exactly what ``np.searchsorted`` gives, whatever the points and values."""

from __future__ import annotations

import numpy as np
import pytest

from berth.monitoring.locate import Locator
from berth.monitoring.scan import grid_of


def grid(values: np.ndarray) -> np.ndarray:
    return grid_of({"percentiles": np.percentile(values, np.linspace(0, 100, 101)).tolist()})


RNG = np.random.default_rng(7)
CASES = {
    "bell": (grid(RNG.normal(size=2000)), RNG.normal(size=50_000)),
    "skewed": (grid(RNG.lognormal(0, 3, 2000)), RNG.lognormal(0, 3, 50_000)),
    "ties": (grid(RNG.poisson(2, 2000).astype(float)), RNG.poisson(2, 50_000).astype(float)),
    "tiny range": (np.array([1.0, 1.0 + 1e-12, 1.0 + 2e-12]), 1.0 + RNG.integers(-2, 5, 1000) * 5e-13),
    "one point": (np.array([3.0]), RNG.normal(3, 1, 1000)),
    "huge": (np.array([-1e300, 0.0, 1e300]), np.array([-1.7e308, -1e300, -1.0, 0.0, 5e299, 1e300, 1.7e308])),
}


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_locator_equals_searchsorted(case: str, side: str) -> None:
    points, values = CASES[case]
    edges = np.concatenate([points, np.nextafter(points, np.inf), np.nextafter(points, -np.inf)])
    locate = Locator(points, side)  # type: ignore[arg-type]
    for batch in (values, edges, values[::-1], values[:0]):
        assert np.array_equal(locate(batch), np.searchsorted(points, batch, side=side))


def test_the_table_is_used_where_it_pays_and_dropped_where_it_does_not() -> None:
    bell = Locator(CASES["bell"][0], "left")
    bell(CASES["bell"][1])
    assert bell.table is not None
    ties = Locator(CASES["ties"][0], "left")
    ties(CASES["ties"][1])
    assert ties.table is None  # nearly every value sits on a point: plain binary search
