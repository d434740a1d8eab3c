"""Data drift of logged inputs (and outputs) against the reference statistics kept in the manifest.

The rule that picks a test (after Evidently's defaults), per feature, on the non-missing values of the window:

============  =====================================  =====================================================
feature       ``n <= small_sample`` (default 1000)   larger samples
============  =====================================  =====================================================
numeric       Kolmogorov-Smirnov, drift if p < 0.05  Wasserstein distance / reference std, drift if > 0.1
categorical   chi-square, drift if p < 0.05          Jensen-Shannon distance (base 2), drift if > 0.1
============  =====================================  =====================================================

Why the switch: a test's p-value shrinks with the sample size, so on large windows a statistical test flags
differences too small to matter; a distance measures how much, whatever ``n``. PSI (drift if > 0.2) is
available for both kinds. Any feature can get its own method and threshold (:class:`FeatureRule`).

The reference is rebuilt from the manifest's statistics: a numeric feature's distribution function is the
piecewise-linear curve through its 101 percentiles (KS, Wasserstein), its histogram of 20 bins gives PSI; a
categorical feature's frequencies give chi-square, Jensen-Shannon and PSI. Outputs of a classifier are compared
as categories over the reference histogram's bins (each class falls in its own bin).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from berth.errors import UsageError

STATISTICAL = {"ks", "chisquare"}  # the score is a p-value: drift when it falls below the threshold
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

    small_sample: int = 1000
    dataset_share: float = 0.5
    min_sample: int = 20  # fewer non-missing values than this: not enough data to say
    features: dict[str, FeatureRule] = field(default_factory=dict)

    def rule(self, feature: str, kind: str, n: int) -> tuple[str, float]:
        override = self.features.get(feature, FeatureRule())
        method = override.method or choose_method(kind, n, self.small_sample)
        allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
        if method not in allowed:
            raise UsageError(f"drift method {method!r} does not apply to {kind} feature {feature!r}; "
                             f"use one of {', '.join(sorted(allowed))}")
        return method, override.threshold if override.threshold is not None else METHODS[method]


def choose_method(kind: str, n: int, small_sample: int = 1000) -> str:
    """The default rule (see the module's documentation)."""
    if kind == "numeric":
        return "ks" if n <= small_sample else "wasserstein"
    return "chisquare" if n <= small_sample else "jensenshannon"


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DatasetDrift:
    features: list[FeatureDrift]
    share: float
    threshold: float
    drifted: bool

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "share": self.share, "threshold": self.threshold,
                "drifted_features": self.drifted_features, "features": [f.to_dict() for f in self.features]}


# --------------------------------------------------------------------------- entry points


def feature_drift(name: str, values: Any, reference: dict[str, Any], config: DriftConfig | None = None, *,
                  as_categories: bool = False) -> FeatureDrift:
    """Drift of one feature's current ``values`` against its reference statistics."""
    config = config or DriftConfig()
    kind = reference.get("type", "numeric")
    series = pd.Series(values)
    if kind == "numeric":
        current = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        current = current[np.isfinite(current)]
    else:
        current = series.dropna().astype(str).to_numpy()
    n = len(current)
    shown = "binned" if kind == "numeric" and as_categories else kind
    if kind == "numeric" and "percentiles" not in reference:
        return FeatureDrift(name, shown, None, None, None, False, n, "no reference values")
    plot = distribution_plot(current, reference, as_categories=shown == "binned")
    if n < config.min_sample:
        return FeatureDrift(name, shown, None, None, None, False, n,
                            f"only {n} values (at least {config.min_sample} needed)", plot)
    method, threshold = config.rule(name, "categorical" if shown == "binned" else kind, n)
    score = SCORES[method](current, reference)
    drifted = score < threshold if method in STATISTICAL else score > threshold
    return FeatureDrift(name, shown, method, float(score), threshold, bool(drifted), n, "", plot)


def dataset_drift(frame: pd.DataFrame, reference: dict[str, Any], config: DriftConfig | None = None) -> DatasetDrift:
    """Drift of every reference feature present in ``frame``; dataset drift when the drifted share passes
    ``config.dataset_share``."""
    config = config or DriftConfig()
    features = [feature_drift(name, frame[name], stats, config)
                for name, stats in reference.get("features", {}).items() if name in frame.columns]
    judged = [f for f in features if f.method is not None]
    share = sum(f.drifted for f in judged) / len(judged) if judged else 0.0
    return DatasetDrift(features, share, config.dataset_share, bool(judged) and share > config.dataset_share)


def prediction_drift(predictions: Any, reference: dict[str, Any] | None, classification: bool,
                     config: DriftConfig | None = None) -> FeatureDrift:
    """Drift of the model's outputs against the outputs it gave on the reference data."""
    if not reference:
        return FeatureDrift("prediction", "numeric", None, None, None, False, len(predictions),
                            "no reference predictions in the manifest")
    return feature_drift("prediction", predictions, reference, config,
                         as_categories=classification and reference.get("type") == "numeric")


# --------------------------------------------------------------------------- reference distributions


def reference_cdf(x: np.ndarray, percentiles: np.ndarray, side: str = "right") -> np.ndarray:
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


def ks_pvalue(current: np.ndarray, reference: dict[str, Any]) -> float:
    """One-sample Kolmogorov-Smirnov test against the reference's distribution function (ties handled by
    comparing both one-sided limits at every observed value)."""
    from scipy.stats import kstwo

    percentiles = np.asarray(reference["percentiles"], dtype="float64")
    values = np.sort(current)
    unique, counts = np.unique(values, return_counts=True)
    n = len(values)
    after = np.cumsum(counts) / n  # empirical P(X <= x)
    before = after - counts / n  # empirical P(X < x)
    statistic = max(np.max(np.abs(after - reference_cdf(unique, percentiles, "right"))),
                    np.max(np.abs(before - reference_cdf(unique, percentiles, "left"))))
    return float(kstwo.sf(statistic, n))


def wasserstein_normed(current: np.ndarray, reference: dict[str, Any]) -> float:
    """Wasserstein-1 distance between the quantile functions, divided by the reference's standard deviation."""
    percentiles = np.asarray(reference["percentiles"], dtype="float64")
    grid = np.linspace(0.0, 1.0, 1001)
    reference_q = np.interp(grid, np.linspace(0.0, 1.0, len(percentiles)), percentiles)
    current_q = np.quantile(current, grid)
    distance = float(np.trapezoid(np.abs(current_q - reference_q), grid))
    scale = reference.get("std") or (reference.get("max", 0) - reference.get("min", 0)) or 1.0
    return distance / float(scale)


def _numeric_bins(current: np.ndarray, reference: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts over the reference histogram's bins, the outer bins open-ended."""
    edges = np.asarray(reference["histogram"]["edges"], dtype="float64")
    expected = np.asarray(reference["histogram"]["counts"], dtype="float64")
    inner = edges[1:-1]
    observed = np.bincount(np.searchsorted(inner, current, side="right"), minlength=len(expected))
    return expected, observed.astype("float64")


def _categories(current: np.ndarray, reference: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if reference.get("type") == "numeric":
        expected, observed = _numeric_bins(current.astype("float64"), reference)
        return expected, observed, [str(i) for i in range(len(expected))]
    frequencies = dict(reference.get("frequencies", {}))
    counts = pd.Series(current).value_counts()
    names = list(frequencies) + sorted(str(k) for k in counts.index if str(k) not in frequencies)
    expected = np.array([frequencies.get(k, 0) for k in names], dtype="float64")
    observed = np.array([counts.get(k, 0) for k in names], dtype="float64")
    return expected, observed, names


def _shares(expected: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.maximum(expected / max(expected.sum(), 1), EPSILON)
    q = np.maximum(observed / max(observed.sum(), 1), EPSILON)
    return p / p.sum(), q / q.sum()


def chisquare_pvalue(current: np.ndarray, reference: dict[str, Any]) -> float:
    from scipy.stats import chisquare

    expected, observed, _ = _categories(current, reference)
    keep = (expected > 0) | (observed > 0)
    expected, observed = expected[keep], observed[keep]
    if len(observed) < 2:
        return 1.0
    shares = (expected + 0.5) / (expected + 0.5).sum()  # half a count for categories the reference never saw
    return float(chisquare(observed, shares * observed.sum()).pvalue)


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


def distribution_plot(current: np.ndarray, reference: dict[str, Any], *,
                      as_categories: bool = False) -> dict[str, Any]:
    """Reference and current shares over the reference's bins or categories, for plots. Numeric values compared
    as categories (a classifier's classes) get one bar per class, named by its value, on a categorical axis."""
    if reference.get("type") == "numeric" and as_categories and "histogram" in reference:
        expected, observed = _numeric_bins(current.astype("float64"), reference)
        keep = np.flatnonzero((expected + observed) > 0)
        return {"categories": [_bin_name(i, current, reference) for i in keep],
                "reference": (expected[keep] / max(expected.sum(), 1)).tolist(),
                "current": (observed[keep] / max(observed.sum(), 1)).tolist()}
    if reference.get("type") == "numeric":
        if "histogram" not in reference:
            return {}
        expected, observed = _numeric_bins(current.astype("float64"), reference)
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
    for values in (np.asarray(current, dtype="float64"), np.asarray(reference.get("percentiles", []), "float64")):
        inside = values[(values >= low) & ((values <= high) if last else (values < high))]
        if len(inside):
            unique, counts = np.unique(inside, return_counts=True)
            value = float(unique[np.argmax(counts)])
            return str(int(value)) if value.is_integer() else f"{value:.4g}"
    return f"{low:.3g}-{high:.3g}"
