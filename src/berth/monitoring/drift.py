"""Data drift of logged inputs (and outputs) against the reference statistics kept in the manifest.

Both sides are samples: the training data's statistics come from ``n`` rows, the window holds ``m`` values.
Every default test is a **two-sample** test that counts both, so its false-alarm rate is the level it is run at
(5 %) for a 150-row reference as for a 20,000-row one (see docs/monitoring.md and bench/drift_calibration.py):

==========================  ===========================================================================
data compared               default test (drift when p < 0.05)
==========================  ===========================================================================
numeric, many values        two-sample Kolmogorov-Smirnov from the reference's 101 stored percentiles, at
                            the effective size n*m/(n+m) (as powerful as scipy's ks_2samp on the raw rows)
numeric, few values (ties)  two-sample chi-square over the reference histogram's bins (exact counts on both
                            sides; a discrete feature's point masses make KS too coarse)
categorical, classes        two-sample chi-square on the 2 x k table of counts, sparse cells pooled
==========================  ===========================================================================

The test is chosen by the data actually compared (the window's values and the reference's), not by the
reference's size. On large samples (effective size above ``small_sample``, 1000) a p-value flags differences
too small to matter, so drift also needs an effect of at least ``min_effect`` (0.03): the KS distance, or the
total variation distance between the category (bin) shares. Wasserstein distance (/ reference std, > 0.1),
Jensen-Shannon distance (> 0.1) and PSI (> 0.2) remain available per feature (:class:`FeatureRule`).

Dataset drift: more than ``dataset_share`` (half) of the judged features drifted, or so many drifted that
chance alone would make that many alarm at once less than 5 % of the time (each test alarming 5 % of the time,
independently: the binomial tail; 2 of 4 features is 1.4 %, 1 of 2 is 9.8 %). So the dataset rule's false
alarms stay under 5 % for any number of features while two shifted features out of four are dataset drift;
the calibration benchmark checks it by simulation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from berth.errors import UsageError
from berth.reference import OTHER

STATISTICAL = {"ks", "chisquare"}  # the score is a p-value: drift when it falls below the threshold
DISCRETE_VALUES = 20  # a numeric feature with at most this many distinct values is compared as bins
MIN_CELL = 5  # chi-square cells: categories rarer than this (expected count) are pooled
METHODS = {"ks": 0.05, "chisquare": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "psi": 0.2}
NUMERIC_METHODS = {"ks", "wasserstein", "psi", "chisquare", "jensenshannon"}
CATEGORICAL_METHODS = {"chisquare", "jensenshannon", "psi"}
EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureRule:
    """An override for one feature: the method, the threshold, or both."""

    method: str | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.method is not None and self.method not in METHODS:
            raise UsageError(f"unknown drift method {self.method!r}; choose one of {', '.join(METHODS)}")

    @classmethod
    def parse(cls, text: str) -> tuple[str, FeatureRule]:
        """``feature=method``, ``feature=method:threshold`` or ``feature=:threshold`` (the CLI's form)."""
        name, sep, spec = text.rpartition("=")
        if not sep or not name:
            raise UsageError(f"invalid drift rule {text!r}: expected FEATURE=METHOD[:THRESHOLD]")
        method, _, threshold = spec.partition(":")
        try:
            value = float(threshold) if threshold else None
        except ValueError:
            raise UsageError(f"invalid threshold in drift rule {text!r}") from None
        return name, cls(method or None, value)


@dataclass(frozen=True)
class DriftConfig:
    """The drift rule: where small samples end, the dataset-drift share, and overrides per feature."""

    small_sample: int = 1000  # above this effective sample size, drift also needs min_effect
    dataset_share: float = 0.5
    min_sample: int = 20  # fewer non-missing values than this: not enough data to say
    min_effect: float = 0.03  # KS distance or total variation distance a large sample must also show
    dataset_alpha: float = 0.05  # dataset drift also when this many drifted features are this unlikely by chance
    features: dict[str, FeatureRule] = field(default_factory=dict)

    def rule(self, feature: str, kind: str, n: int, discrete: bool = False) -> tuple[str, float]:
        override = self.features.get(feature, FeatureRule())
        method = override.method or choose_method(kind, n, self.small_sample, discrete=discrete)
        allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
        if method not in allowed:
            raise UsageError(f"drift method {method!r} does not apply to {kind} feature {feature!r}; "
                             f"use one of {', '.join(sorted(allowed))}")
        return method, override.threshold if override.threshold is not None else METHODS[method]


def choose_method(kind: str, n: int = 0, small_sample: int = 1000, *, discrete: bool = False) -> str:
    """The default test (see the module's documentation): KS for numeric values, chi-square for categories and
    for numeric values with few distinct values. ``n`` and ``small_sample`` decide only whether an effect size
    is needed too (:func:`feature_drift`)."""
    if kind == "numeric" and not discrete:
        return "ks"
    return "chisquare"


@dataclass
class Counted:
    """A window's values reduced to counts, for windows too large to hold (built by
    :mod:`berth.monitoring.scan`): numeric values as cumulative counts at evaluation points (the reference's
    percentiles, refined) and over the reference histogram's bins; categories by name."""

    n: int
    grid: np.ndarray | None = None
    at_or_below: np.ndarray | None = None  # values <= grid[i]
    below: np.ndarray | None = None  # values < grid[i]
    bins: np.ndarray | None = None  # over the reference histogram's bins, outer bins open-ended
    distinct: int = 0  # distinct values seen, counted up to DISCRETE_VALUES + 1
    categories: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.n


@dataclass
class FeatureDrift:
    feature: str
    kind: str  # numeric, categorical, or "binned" (numeric values compared as categories over bins)
    method: str | None
    score: float | None
    threshold: float | None
    drifted: bool
    n: int
    reason: str = ""
    plot: dict[str, Any] = field(default_factory=dict)  # bins or categories, reference and current shares
    n_reference: int | None = None  # the reference's non-missing values
    effect: float | None = None  # KS distance or total variation distance (two-sample tests)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DatasetDrift:
    features: list[FeatureDrift]
    share: float
    threshold: float
    drifted: bool
    chance: float = 1.0  # how likely so many features alarm together by chance alone
    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "share": self.share, "threshold": self.threshold, "chance": self.chance,
                "drifted_features": self.drifted_features, "features": [f.to_dict() for f in self.features]}


# --------------------------------------------------------------------------- entry points


def feature_drift(name: str, values: Any, reference: dict[str, Any], config: DriftConfig | None = None, *,
                  as_categories: bool = False) -> FeatureDrift:
    """Drift of one feature's current ``values`` against its reference statistics."""
    config = config or DriftConfig()
    kind = reference.get("type", "numeric")
    current: Any
    if isinstance(values, Counted):
        current = values
    elif kind == "numeric":
        current = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        current = current[np.isfinite(current)]
    else:
        current = pd.Series(values).dropna().astype(str).to_numpy()
    n = len(current)
    shown = "binned" if kind == "numeric" and as_categories else kind
    if kind == "numeric" and "percentiles" not in reference:
        return FeatureDrift(name, shown, None, None, None, False, n, "no reference values")
    plot = distribution_plot(current, reference, as_categories=shown == "binned")
    if n < config.min_sample:
        return FeatureDrift(name, shown, None, None, None, False, n,
                            f"only {n} values (at least {config.min_sample} needed)", plot)
    compared = "categorical" if shown == "binned" else kind
    discrete = compared == "numeric" and is_discrete(current, reference)
    method, threshold = config.rule(name, compared, n, discrete)
    n_reference = reference_size(reference)
    effect = None
    if method in STATISTICAL:
        score, effect = TESTS[method](current, reference)
        drifted = score < threshold
        effective = n * n_reference / (n + n_reference) if n_reference else n
        if drifted and effective > config.small_sample and effect < config.min_effect:
            drifted = False  # significant, but too small to matter
    else:
        score = SCORES[method](current, reference)
        drifted = score > threshold
    return FeatureDrift(name, shown, method, float(score), threshold, bool(drifted), n, "", plot, n_reference,
                        None if effect is None else float(effect))


def dataset_drift(frame: pd.DataFrame, reference: dict[str, Any], config: DriftConfig | None = None) -> DatasetDrift:
    """Drift of every reference feature present in ``frame``; dataset drift when the drifted share passes
    ``config.dataset_share``."""
    config = config or DriftConfig()
    features = [feature_drift(name, frame[name], stats, config)
                for name, stats in reference.get("features", {}).items() if name in frame.columns]
    return combine(features, config)


def combine(features: list[FeatureDrift], config: DriftConfig | None = None) -> DatasetDrift:
    """Dataset drift of judged ``features``: more than ``config.dataset_share`` of them drifted."""
    config = config or DriftConfig()
    judged = [f for f in features if f.method is not None]
    drifted = sum(f.drifted for f in judged)
    share = drifted / len(judged) if judged else 0.0
    chance = chance_of(drifted, len(judged))
    verdict = bool(judged) and (share > config.dataset_share or (drifted > 0 and chance <= config.dataset_alpha))
    return DatasetDrift(features, share, config.dataset_share, verdict, chance)


def chance_of(drifted: int, judged: int, alpha: float = 0.05) -> float:
    """How likely at least ``drifted`` of ``judged`` features alarm under no drift, each test alarming with
    probability ``alpha`` independently (the binomial tail)."""
    return float(sum(math.comb(judged, j) * alpha ** j * (1 - alpha) ** (judged - j)
                     for j in range(drifted, judged + 1))) if judged else 1.0


def prediction_drift(predictions: Any, reference: dict[str, Any] | None, classification: bool,
                     config: DriftConfig | None = None) -> FeatureDrift:
    """Drift of the model's outputs against the outputs it gave on the reference data."""
    if not reference:
        return FeatureDrift("prediction", "numeric", None, None, None, False, len(predictions),
                            "no reference predictions in the manifest")
    return feature_drift("prediction", predictions, reference, config,
                         as_categories=classification and reference.get("type") == "numeric")


# --------------------------------------------------------------------------- reference distributions


def reference_cdf(x: np.ndarray, percentiles: np.ndarray, side: Literal["left", "right"] = "right") -> np.ndarray:
    """The reference's distribution function at ``x``: linear between its percentiles. ``side="right"`` is
    F(x) = P(X <= x), ``"left"`` is P(X < x): they differ where percentiles repeat (a point mass)."""
    grid = np.linspace(0.0, 1.0, len(percentiles))
    index = np.searchsorted(percentiles, x, side=side)
    lower = np.clip(index - 1, 0, len(percentiles) - 1)
    upper = np.clip(index, 0, len(percentiles) - 1)
    span = percentiles[upper] - percentiles[lower]
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(span > 0, (x - percentiles[lower]) / np.where(span > 0, span, 1), 0.0)
    values = grid[lower] + fraction * (grid[upper] - grid[lower])
    return np.where(index == 0, 0.0, np.where(index >= len(percentiles), 1.0, values))


def reference_size(reference: dict[str, Any]) -> int:
    """The reference's non-missing values (the sample size behind its statistics)."""
    if "histogram" in reference:
        return int(sum(reference["histogram"]["counts"]))
    if "frequencies" in reference:
        return int(sum(reference["frequencies"].values()))
    return max(int(reference.get("count", 0)) - int(reference.get("missing", 0)), 0)


def is_discrete(current: np.ndarray, reference: dict[str, Any]) -> bool:
    """Few distinct values on both sides (counts, ratings, flags): compared as bins, where ties are exact."""
    if "histogram" not in reference:
        return False
    percentiles = np.asarray(reference.get("percentiles", []), dtype="float64")
    distinct = current.distinct if isinstance(current, Counted) else len(np.unique(current[: 100_000]))
    return len(np.unique(percentiles)) <= DISCRETE_VALUES and distinct <= DISCRETE_VALUES


def ks_two_sample(current: np.ndarray, reference: dict[str, Any]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test of ``current`` against the reference's sample, known through its
    101 percentiles and its size n: (p-value, statistic).

    The reference's distribution function is rebuilt linearly between its percentiles (1 % apart) and compared
    with the window's at every value of either side, both one-sided limits (so ties and point masses are
    handled). The p-value is Kolmogorov's limit law at the effective size n*m/(n+m), with Stephens'
    small-sample correction. Checked against scipy's ``ks_2samp`` on the raw reference rows: the same
    false-alarm and detection rates (bench/results/drift_calibration.md)."""
    from scipy.special import kolmogorov  # Kolmogorov's limit law's survival function (scipy.stats is slow to load)

    percentiles = np.asarray(reference["percentiles"], dtype="float64")
    n_reference = max(reference_size(reference), 1)
    m = len(current)
    if isinstance(current, Counted):  # counts at the evaluation points
        assert current.grid is not None and current.at_or_below is not None and current.below is not None
        points, after, before = current.grid, current.at_or_below / m, current.below / m
    else:
        values = np.sort(current)
        points = np.unique(np.concatenate([values, percentiles]))
        after = np.searchsorted(values, points, side="right") / m  # window P(X <= x)
        before = np.searchsorted(values, points, side="left") / m  # window P(X < x)
    statistic = float(max(np.abs(after - reference_cdf(points, percentiles, "right")).max(),
                          np.abs(before - reference_cdf(points, percentiles, "left")).max()))
    effective = m * n_reference / (m + n_reference)
    root = np.sqrt(effective)
    return float(kolmogorov((root + 0.12 + 0.11 / root) * statistic)), statistic


def chisquare_two_sample(current: np.ndarray, reference: dict[str, Any]) -> tuple[float, float]:
    """Two-sample chi-square test on the 2 x k table of reference and window counts per category (or per bin of
    the reference histogram for numeric values): (p-value, total variation distance between the shares).
    Categories whose expected count is below 5 in either row are pooled, so the chi-square law holds."""
    from scipy.special import chdtrc  # the chi-square law's survival function

    expected, observed, _ = _categories(current, reference, pool_unknown=True)
    keep = (expected + observed) > 0
    expected, observed = expected[keep], observed[keep]
    total_reference, total_current = expected.sum(), observed.sum()
    if len(observed) < 2 or total_reference == 0 or total_current == 0:
        return 1.0, 0.0
    effect = 0.5 * float(np.abs(expected / total_reference - observed / total_current).sum())
    table = _pool(np.vstack([expected, observed]))
    if table.shape[1] < 2:
        return 1.0, effect
    totals = table.sum(axis=0)
    rows = table.sum(axis=1, keepdims=True)
    grand = table.sum()
    fitted = rows * totals / grand
    statistic = float(((table - fitted) ** 2 / fitted).sum())
    return float(chdtrc(table.shape[1] - 1, statistic)), effect


def _pool(table: np.ndarray) -> np.ndarray:
    """Merge the sparsest columns of a 2 x k table until every expected count is at least ``MIN_CELL``."""
    table = table[:, np.argsort(table.sum(axis=0), kind="stable")[::-1]]
    while table.shape[1] > 2:
        rows = table.sum(axis=1, keepdims=True)
        fitted = rows * table.sum(axis=0) / table.sum()
        if fitted.min() >= MIN_CELL:
            break
        table = np.hstack([table[:, :-2], table[:, -2:].sum(axis=1, keepdims=True)])
    return table


def ks_pvalue(current: np.ndarray, reference: dict[str, Any]) -> float:
    """The p-value of :func:`ks_two_sample`."""
    return ks_two_sample(current, reference)[0]


def wasserstein_normed(current: np.ndarray, reference: dict[str, Any]) -> float:
    """Wasserstein-1 distance between the quantile functions, divided by the reference's standard deviation."""
    percentiles = np.asarray(reference["percentiles"], dtype="float64")
    grid = np.linspace(0.0, 1.0, 1001)
    reference_q = np.interp(grid, np.linspace(0.0, 1.0, len(percentiles)), percentiles)
    if isinstance(current, Counted):
        assert current.grid is not None and current.at_or_below is not None
        current_q = np.interp(grid, current.at_or_below / current.n, current.grid)
    else:
        current_q = np.quantile(current, grid)
    distance = float(np.trapezoid(np.abs(current_q - reference_q), grid))
    scale = reference.get("std") or (reference.get("max", 0) - reference.get("min", 0)) or 1.0
    return distance / float(scale)


def _numeric_bins(current: np.ndarray, reference: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over the reference histogram's bins, the outer bins open-ended."""
    edges = np.asarray(reference["histogram"]["edges"], dtype="float64")
    expected = np.asarray(reference["histogram"]["counts"], dtype="float64")
    if isinstance(current, Counted):
        assert current.bins is not None
        return expected, current.bins.astype("float64")
    inner = edges[1:-1]
    observed = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(expected))
    return expected, observed.astype("float64")


def _categories(current: np.ndarray, reference: dict[str, Any],
                pool_unknown: bool = False) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if reference.get("type") == "numeric":
        expected, observed = _numeric_bins(_floats(current), reference)
        return expected, observed, [str(i) for i in range(len(expected))]
    frequencies = dict(reference.get("frequencies", {}))
    counts = pd.Series(current.categories or {}, dtype="int64") if isinstance(current, Counted) else \
        pd.Series(current).value_counts()
    if pool_unknown and OTHER in frequencies:  # values outside the reference's top list may be its rare ones
        known = counts[counts.index.isin(list(frequencies))]
        rest = int(counts.sum() - known.sum())
        counts = known.copy()
        counts[OTHER] = counts.get(OTHER, 0) + rest
    names = list(frequencies) + sorted(str(k) for k in counts.index if str(k) not in frequencies)
    expected = np.array([frequencies.get(k, 0) for k in names], dtype="float64")
    observed = np.array([counts.get(k, 0) for k in names], dtype="float64")
    return expected, observed, names


def _shares(expected: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.maximum(expected / max(expected.sum(), 1), EPSILON)
    q = np.maximum(observed / max(observed.sum(), 1), EPSILON)
    return p / p.sum(), q / q.sum()


def chisquare_pvalue(current: np.ndarray, reference: dict[str, Any]) -> float:
    """The p-value of :func:`chisquare_two_sample`."""
    return chisquare_two_sample(current, reference)[0]


def jensenshannon_distance(current: np.ndarray, reference: dict[str, Any]) -> float:
    from scipy.spatial.distance import jensenshannon

    expected, observed, _ = _categories(current, reference)
    return float(jensenshannon(expected / max(expected.sum(), 1), observed / max(observed.sum(), 1), base=2))


def psi(current: np.ndarray, reference: dict[str, Any]) -> float:
    """Population stability index over the reference's bins (numeric) or categories."""
    expected, observed, _ = _categories(current, reference)
    p, q = _shares(expected, observed)
    return float(np.sum((q - p) * np.log(q / p)))


SCORES = {"ks": ks_pvalue, "wasserstein": wasserstein_normed, "psi": psi, "chisquare": chisquare_pvalue,
          "jensenshannon": jensenshannon_distance}
TESTS = {"ks": ks_two_sample, "chisquare": chisquare_two_sample}


def distribution_plot(current: np.ndarray, reference: dict[str, Any], *,
                      as_categories: bool = False) -> dict[str, Any]:
    """Reference and current shares over the reference's bins or categories, for plots. Numeric values compared
    as categories (a classifier's classes) get one bar per class, named by its value, on a categorical axis."""
    if reference.get("type") == "numeric" and as_categories and "histogram" in reference:
        expected, observed = _numeric_bins(_floats(current), reference)
        keep = np.flatnonzero((expected + observed) > 0)
        return {"categories": [_bin_name(int(i), current, reference) for i in keep],
                "reference": (expected[keep] / max(expected.sum(), 1)).tolist(),
                "current": (observed[keep] / max(observed.sum(), 1)).tolist()}
    if reference.get("type") == "numeric":
        if "histogram" not in reference:
            return {}
        expected, observed = _numeric_bins(_floats(current), reference)
        return {"edges": list(reference["histogram"]["edges"]),
                "reference": (expected / max(expected.sum(), 1)).tolist(),
                "current": (observed / max(observed.sum(), 1)).tolist()}
    expected, observed, names = _categories(current, reference)
    top = np.argsort(-(expected + observed), kind="stable")[:30]
    return {"categories": [names[i] for i in top],
            "reference": (expected[top] / max(expected.sum(), 1)).tolist(),
            "current": (observed[top] / max(observed.sum(), 1)).tolist()}


def _bin_name(index: int, current: np.ndarray, reference: dict[str, Any]) -> str:
    """The value a histogram bin holds when it holds one class: the commonest of the current values or the
    reference's percentiles that fall in it."""
    edges = np.asarray(reference["histogram"]["edges"], dtype="float64")
    low, high = edges[index], edges[index + 1]
    last = index == len(edges) - 2
    seen = np.array([]) if isinstance(current, Counted) else np.asarray(current, dtype="float64")
    for values in (seen, np.asarray(reference.get("percentiles", []), "float64")):
        inside = values[(values >= low) & ((values <= high) if last else (values < high))]
        if len(inside):
            unique, counts = np.unique(inside, return_counts=True)
            value = float(unique[np.argmax(counts)])
            return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return f"{low:.3g}-{high:.3g}"


def _floats(current: Any) -> Any:
    return current if isinstance(current, Counted) else np.asarray(current).astype("float64")
