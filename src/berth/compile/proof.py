"""Compare the original and the twin on the proof's rows: labels identical, numbers within the tolerance.

Labels must be identical, except on rows where the original's two best probabilities lie within the tolerance of
each other (a tie that float rounding may break either way; counted as ``label_ties_skipped``). Probabilities
must agree within ``PROBA_TOLERANCE`` (absolute). Regression values within ``REGRESSION_TOLERANCE`` absolute when
the twin computes in float64; a twin that computes in float32 (trees, as the original trees do on their float32
input, but summed in another order) gets that tolerance relative to the largest output, stated in the proof.
Missing values: rows holding one are tried on the original first; if it raises on them, the twin is made to
refuse them too (``missing_allowed: false``), so both answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from berth.compile.convert import Refusal
from berth.flavors.base import Predictor
from berth.signature import Signature

PROBA_TOLERANCE = 1e-5
REGRESSION_TOLERANCE = 1e-5


@dataclass
class Answers:
    values: np.ndarray  # labels of a classifier, outputs of a regressor
    proba: np.ndarray | None


def answers(predictor: Predictor, signature: Signature, rows: np.ndarray) -> Answers:
    from berth.coercion import coerce

    inputs = coerce(signature, rows, to=predictor.input_target, dtype=predictor.input_dtype)
    with np.errstate(all="ignore"):
        values = np.asarray(predictor.predict(inputs))
        proba = np.asarray(predictor.predict_proba(inputs)) if predictor.has_proba else None
    return Answers(values, proba)


def original_answers(predictor: Predictor, signature: Signature, rows: np.ndarray) -> tuple[Answers, np.ndarray, bool]:
    """The original's answers, the rows they are for (a mask), and whether it accepts missing values."""
    missing = np.isnan(rows).any(axis=1)
    if missing.any():
        try:
            return answers(predictor, signature, rows), np.ones(len(rows), dtype=bool), True
        except Exception:
            pass
    try:
        return answers(predictor, signature, rows[~missing]), ~missing, not missing.any()
    except Exception as exc:
        raise Refusal(f"the original model fails on the proof's rows: {type(exc).__name__}: {exc}") from exc


def compare(expected: Answers, got: Answers, origins: list[str], *, classifier: bool,
            float32: bool) -> dict[str, Any]:
    """The proof's numbers, or :class:`Refusal` naming the worst row."""
    if got.values.shape != expected.values.shape or got.values.dtype != expected.values.dtype:
        raise Refusal(f"proof failed: the twin answers {got.values.dtype}{list(got.values.shape)}, the original "
                      f"{expected.values.dtype}{list(expected.values.shape)}")
    proof: dict[str, Any] = {"rows_tried": len(expected.values), "worst_abs_diff": {}}
    if classifier:
        ties = np.zeros(len(expected.values), dtype=bool)
        if expected.proba is not None:
            if got.proba is None or got.proba.shape != expected.proba.shape:
                raise Refusal("proof failed: the twin gives no probabilities of the original's shape")
            worst, row = worst_difference(expected.proba, got.proba)
            check(worst, row, PROBA_TOLERANCE, "probabilities", origins)
            proof["worst_abs_diff"]["proba"] = worst
            top = np.sort(expected.proba, axis=1)
            ties = (top[:, -1] - top[:, -2] <= PROBA_TOLERANCE) if top.shape[1] > 1 else ties
        same = equal_mask(expected.values, got.values)
        if (~same & ~ties).any():
            row = int(np.flatnonzero(~same & ~ties)[0])
            raise Refusal(f"proof failed: the twin predicts {got.values[row]!r} where the original predicts "
                          f"{expected.values[row]!r} on row {row} ({origins[row]}), "
                          f"{int((~same & ~ties).sum())} such row(s)")
        skipped = int((~same & ties).sum())
        proof.update(labels_checked=len(same) - skipped, label_ties_skipped=skipped,
                     tolerance=PROBA_TOLERANCE, tolerance_rule="absolute, on probabilities")
        return proof
    tolerance, rule = REGRESSION_TOLERANCE, "absolute"
    if float32:
        finite = np.abs(expected.values[np.isfinite(expected.values)]) if expected.values.dtype.kind == "f" else []
        scale = max(1.0, float(np.max(finite, initial=0.0)))
        tolerance, rule = REGRESSION_TOLERANCE * scale, (f"{REGRESSION_TOLERANCE:g} relative to the largest output "
                                                         f"({scale:.6g}): the twin sums float32 trees")
    worst, row = worst_difference(expected.values, got.values)
    check(worst, row, tolerance, "outputs", origins)
    proof["worst_abs_diff"]["regression"] = worst
    proof.update(tolerance=tolerance, tolerance_rule=rule)
    return proof


def equal_mask(expected: np.ndarray, got: np.ndarray) -> np.ndarray:
    same = np.asarray(expected == got)
    if same.shape != expected.shape:
        return np.zeros(expected.shape[0], dtype=bool)
    return np.asarray(same.reshape(len(same), -1).all(axis=1))


def worst_difference(expected: np.ndarray, got: np.ndarray) -> tuple[float, int]:
    """The largest absolute difference and its row; a NaN or infinity on one side only counts as infinite."""
    a, b = expected.astype(np.float64), got.astype(np.float64)
    with np.errstate(all="ignore"):
        diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, np.where(np.isfinite(diff), diff, np.inf))
    per_row = diff.reshape(len(diff), -1).max(axis=1) if diff.size else np.zeros(0)
    if per_row.size == 0:
        return 0.0, 0
    row = int(np.argmax(per_row))
    return float(per_row[row]), row


def check(worst: float, row: int, tolerance: float, what: str, origins: list[str]) -> None:
    if worst > tolerance:
        raise Refusal(f"proof failed: {what} differ by {worst:.3g} on row {row} ({origins[row]}); the tolerance "
                      f"is {tolerance:.3g}")
