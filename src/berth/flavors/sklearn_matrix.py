"""A serving twin of a scikit-learn estimator that takes the validated float matrix instead of a DataFrame.

An estimator fitted on a DataFrame checks the column names of every DataFrame it predicts on, and turning a
one-row matrix into a DataFrame and back costs about 0.7 ms in pandas and scikit-learn's validation, more than
a LogisticRegression's whole predict (0.2 ms). berth has already checked the names, order and types against the
signature, so that work is pure overhead. The twin is a shallow copy of the estimator without
``feature_names_in_`` (on it and on each step of a pipeline), which scikit-learn then reads as "fitted on a
plain array" and feeds the matrix straight through. It is made only when that is certain to compute the same:

- every signature column is a float column, in the order of ``feature_names_in_``: the matrix then holds
  exactly the values the DataFrame would turn into;
- the estimator is scikit-learn's own (or a pipeline of such steps) and holds no fitted estimator that checks
  names itself (a ColumnTransformer, a VotingClassifier of name-checked estimators, a FunctionTransformer that
  may expect a DataFrame are all left alone);
- on the signature's example rows the twin gives the same predictions (and probabilities) as the original on a
  DataFrame, without a warning.

Otherwise the original estimator keeps receiving DataFrames. ``BERTH_SKLEARN_MATRIX=0`` turns the twin off.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np

from berth import config
from berth.signature import Signature

FLOAT_DTYPES = frozenset({"float16", "float32", "float64"})
UNSAFE_STEPS = frozenset({"FunctionTransformer", "ColumnTransformer", "FeatureUnion"})


def matrix_twin(estimator: Any, signature: Signature | None) -> Any | None:
    """The twin described above, or None when the estimator must keep receiving DataFrames."""
    if signature is None or not config.sklearn_matrix():
        return None
    names = getattr(estimator, "feature_names_in_", None)
    if signature.layout != "table" or names is None or signature.names != [str(n) for n in names]:
        return None
    if not all(c.dtype in FLOAT_DTYPES for c in signature.columns):
        return None
    twin = _strip(estimator)
    if twin is None or not _same_answers(estimator, twin, signature):
        return None
    return twin


def _strip(estimator: Any) -> Any | None:
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and type(estimator).__name__ == "Pipeline":
        stripped_steps = []
        for name, step in steps:
            stripped = step if step is None or step == "passthrough" else _strip(step)
            if stripped is None:
                return None
            stripped_steps.append((name, stripped))
        twin = copy.copy(estimator)
        twin.steps = stripped_steps
        return twin
    if not type(estimator).__module__.startswith("sklearn.") or type(estimator).__name__ in UNSAFE_STEPS:
        return None
    if any(_checks_names(value) for key, value in vars(estimator).items() if key != "feature_names_in_"):
        return None
    twin = copy.copy(estimator)
    if "feature_names_in_" in vars(twin):
        del twin.feature_names_in_
    return twin


def _checks_names(value: Any) -> bool:
    """Whether ``value`` is, or holds, a fitted estimator that would check column names on its own."""
    if isinstance(value, (list, tuple)):
        return any(_checks_names(v) for v in value)
    if isinstance(value, dict):
        return any(_checks_names(v) for v in value.values())
    return hasattr(value, "fit") and hasattr(value, "feature_names_in_")


def _same_answers(estimator: Any, twin: Any, signature: Signature) -> bool:
    from berth.coercion import coerce

    if not signature.example:
        return False
    frame = coerce(signature, signature.example, to="dataframe")
    matrix = coerce(signature, signature.example, to="ndarray")
    methods = ["predict"] + (["predict_proba"] if hasattr(estimator, "predict_proba") else [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            for method in methods:
                expected = np.asarray(getattr(estimator, method)(frame))
                got = np.asarray(getattr(twin, method)(matrix))
                if expected.shape != got.shape or not np.array_equal(expected, got):
                    return False
        except Exception:
            return False
    return True
