"""The rows of an equivalence proof: the sample, plus rows synthesised from the reference statistics.

Deterministic (seeded). Per column, the range comes from the reference statistics (min, max and percentiles),
else from the sample, else [-1, 1]. Rows drawn: uniform within the range, drawn from the column's distribution
(its percentiles), edge rows (every column at its minimum, its maximum, a span below the minimum, a span above the
maximum; one column at a time for tables of up to ``PER_COLUMN_EDGES`` columns), mixed rows (each value an edge
value with probability 0.2) and, for columns the signature marks nullable, missing values. Integer columns get
whole numbers within their dtype's range. Each row has a label saying where it came from, for a refusal message.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from berth.signature import Signature

SEED = 20261127
RANDOM_ROWS = 2_000
MIXED_ROWS = 500
MAX_SAMPLE_ROWS = 1_000
MAX_CELLS = 4_000_000
PER_COLUMN_EDGES = 100


def column_ranges(signature: Signature, reference: dict[str, Any] | None,
                  sample: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
    """Low and high of each column, and its percentiles when the reference has them."""
    features = (reference or {}).get("features") or {}
    low, high, percentiles = [], [], []
    for index, column in enumerate(signature.columns):
        stats = features.get(column.name) or {}
        if stats.get("type") == "numeric" and isinstance(stats.get("min"), int | float) \
                and isinstance(stats.get("max"), int | float):
            lo, hi = float(stats["min"]), float(stats["max"])
            given = stats.get("percentiles")
            points = np.asarray(given, dtype=np.float64) if isinstance(given, list) and len(given) == 101 else None
        elif sample is not None and np.isfinite(sample[:, index]).any():
            values = sample[:, index][np.isfinite(sample[:, index])]
            lo, hi, points = float(values.min()), float(values.max()), None
        else:
            lo, hi, points = -1.0, 1.0, None
        if hi <= lo:  # one value seen (or a made-up sample of zeros): look around it
            lo, hi = lo - max(abs(lo), 1.0), hi + max(abs(hi), 1.0)
        low.append(lo)
        high.append(hi)
        percentiles.append(points if points is not None and np.isfinite(points).all() else None)
    return np.asarray(low), np.asarray(high), percentiles


def proof_rows(signature: Signature, reference: dict[str, Any] | None,
               sample: np.ndarray | None) -> tuple[np.ndarray, list[str]]:
    """A float64 matrix of rows in the signature's column order, and where each row came from."""
    width = len(signature.columns)
    rng = np.random.default_rng(SEED)
    low, high, percentiles = column_ranges(signature, reference, sample)
    span = np.where(high > low, high - low, np.maximum(np.abs(low), 1.0))
    budget = max(50, MAX_CELLS // max(width, 1))
    blocks: list[np.ndarray] = []
    origins: list[str] = []

    def add(rows: np.ndarray, origin: str | list[str]) -> None:
        blocks.append(rows)
        origins.extend([origin] * len(rows) if isinstance(origin, str) else origin)

    if sample is not None and len(sample):
        add(sample[:MAX_SAMPLE_ROWS], [f"sample row {i}" for i in range(min(len(sample), MAX_SAMPLE_ROWS))])
    count = min(RANDOM_ROWS // 2, budget // 4)
    add(low + rng.random((count, width)) * (high - low), "random within the range")
    drawn = low + rng.random((count, width)) * (high - low)
    for index, points in enumerate(percentiles):
        if points is not None:
            drawn[:, index] = np.interp(rng.random(count), np.linspace(0, 1, 101), points)
    add(drawn, "drawn from the reference distribution")
    edges = {"minimum": low, "maximum": high, "below the minimum": low - span, "above the maximum": high + span}
    for name, values in edges.items():
        add(values[None, :].copy(), f"every column at its {name}" if "the" not in name else f"every column {name}")
    if width <= PER_COLUMN_EDGES:
        middle = (low + high) / 2
        for name, values in edges.items():
            rows = np.repeat(middle[None, :], width, axis=0)
            rows[np.arange(width), np.arange(width)] = values
            add(rows, [f"column {signature.columns[i].name!r} {name}" for i in range(width)])
    mixed = min(MIXED_ROWS, budget // 4)
    rows = low + rng.random((mixed, width)) * (high - low)
    choice = rng.integers(0, 4, (mixed, width))
    pick = rng.random((mixed, width)) < 0.2
    stacked = np.stack(list(edges.values()))  # (4, width)
    rows[pick] = stacked[choice, np.arange(width)[None, :]][pick]
    add(rows, "random with edge values mixed in")
    nullable = [i for i, c in enumerate(signature.columns) if c.nullable]
    if nullable:
        rows = low + rng.random((len(nullable) + 1, width)) * (high - low)
        for row, index in enumerate(nullable):
            rows[row, index] = np.nan
        rows[-1, nullable] = np.nan
        add(rows, [f"column {signature.columns[i].name!r} missing" for i in nullable] + ["every nullable column "
                                                                                          "missing"])
    matrix = np.concatenate(blocks)
    return fit_dtypes(signature, matrix), origins


def fit_dtypes(signature: Signature, matrix: np.ndarray) -> np.ndarray:
    """Whole numbers within range for integer columns; values within float32's range for float32 columns."""
    for index, column in enumerate(signature.columns):
        values = matrix[:, index]
        if column.is_integer:
            info = np.iinfo(np.dtype(column.dtype))
            missing = np.isnan(values)
            values = np.clip(np.round(np.nan_to_num(values)), max(info.min, -2.0 ** 53), min(info.max, 2.0 ** 53))
            values[missing] = np.nan
        elif column.dtype in ("float32", "float16"):
            limit = float(np.finfo(np.dtype(column.dtype)).max)
            values = np.clip(values, -limit, limit)
        matrix[:, index] = values
    return matrix
