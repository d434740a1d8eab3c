"""What the gradient-boosting flavors (xgboost, lightgbm, catboost) share.

Each of them writes the library's own model file (never pickle) and records in ``flavor_options`` what the file
does not say the way berth needs it: which estimator wrapped the booster (``estimator``, one of a fixed list per
library, so loading never imports a class named by the bundle), the class labels of a classifier exactly as the
wrapper had them (``classes`` plus ``classes_dtype``: string labels stay strings, integer labels integers), what
the model takes (``input``) and how many threads a prediction uses (``threads``). A classifier predicts the label
of the most probable class, as the wrappers do.

Input: a NumPy matrix in the signature's column order, unless the model needs a DataFrame (categorical features,
or a sample whose columns are not the model's own feature names in order, which the library then checks by
name). The libraries' DataFrame paths cost milliseconds per call; a matrix costs microseconds (see
``docs/design-notes.md``). Threads: one by default. A server answers many small requests concurrently, and an
OpenMP pool sized to every core, spun up per call on a shared machine, made a one-row XGBoost prediction 30 times
slower; ``berth.save(..., threads=N)`` sets another count (0: the library's default, every core).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from berth.errors import FlavorError
from berth.flavors.base import Predictor

KINDS = ("classifier", "regressor", "ranker", "booster")


class BoostingPredictor(Predictor):
    """Predictions of a booster: ``raw`` gives values (regression, ranking, a bare booster's output) or, for a
    classifier, probabilities of each class, from which ``predict`` picks the label."""

    def __init__(self, raw: Callable[[Any], Any], *, classes: Sequence[Any] | None,
                 input_target: str, classes_dtype: str | None = None) -> None:
        self.raw = raw
        self.input_target = "dataframe" if input_target == "dataframe" else "ndarray"
        self.labels = restore_classes(list(classes), classes_dtype) if classes is not None else None
        self.classes = self.labels.tolist() if self.labels is not None else None

    @property
    def has_proba(self) -> bool:
        return self.labels is not None

    def predict(self, inputs: Any) -> np.ndarray:
        if self.labels is None:
            return np.ascontiguousarray(self.raw(inputs))
        return self.labels[np.argmax(self.predict_proba(inputs), axis=1)]

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if self.labels is None:
            return super().predict_proba(inputs)
        proba = np.asarray(self.raw(inputs))
        if proba.ndim == 1:  # binary: the probability of the second class, as lightgbm and xgboost boosters give
            proba = np.column_stack([1.0 - proba, proba])
        if proba.shape[1] != len(self.labels):
            raise FlavorError(f"the model gave {proba.shape[1]} probabilities per row for {len(self.labels)} classes")
        return np.ascontiguousarray(proba)  # xgboost's can be a transposed view, which orjson refuses


def thread_count(options: dict[str, Any]) -> int:
    """The ``threads=`` option of ``berth.save`` (default 1), checked."""
    threads = options.get("threads", 1)
    if not isinstance(threads, int) or isinstance(threads, bool) or not 0 <= threads <= 1024:
        raise FlavorError(f"threads must be a whole number from 0 (the library's default) to 1024, not {threads!r}")
    return threads


def input_kind(names: Sequence[str] | None, sample: Any, categorical: Sequence[str] = ()) -> str:
    """``dataframe`` when the model needs one (categorical features; a sample whose columns are not the model's
    feature names in order); ``ndarray`` otherwise."""
    if categorical:
        return "dataframe"
    columns = getattr(sample, "columns", None)
    if names and columns is not None and [str(c) for c in columns] != [str(n) for n in names]:
        return "dataframe"
    return "ndarray"


def wrapper_name(model: Any, module: str, names: Sequence[str]) -> str | None:
    """The name of ``model``'s class when it is one of ``names`` defined in ``module`` itself (a subclass from
    elsewhere may change behaviour the model file does not record: that goes to another flavor)."""
    cls = type(model)
    if cls.__qualname__ in names and cls.__module__.split(".")[0] == module:
        return cls.__qualname__
    return None


def class_options(classes: Any) -> dict[str, Any]:
    """``classes`` and ``classes_dtype`` for the manifest: the labels, JSON-ready, and how to rebuild them."""
    labels = np.asarray(classes)
    if labels.ndim != 1 or len(labels) < 2:
        raise FlavorError(f"a classifier needs at least two class labels in one dimension, not {labels.shape}")
    if labels.dtype.kind in "biuf":
        return {"classes": labels.tolist(), "classes_dtype": labels.dtype.name}
    if not all(isinstance(v, str) for v in labels.tolist()):
        raise FlavorError("class labels must be numbers or strings, not "
                          + ", ".join(sorted({type(v).__name__ for v in labels.tolist()})))
    return {"classes": [str(v) for v in labels.tolist()], "classes_dtype": "string"}


def restore_classes(classes: list[Any], dtype: str | None) -> np.ndarray:
    if dtype in (None, "string"):
        if not all(isinstance(v, str | int | float | bool) for v in classes):
            raise FlavorError("malformed class labels in the manifest")
        return np.asarray(classes)
    try:
        return np.asarray(classes, dtype=np.dtype(dtype))
    except (TypeError, ValueError) as exc:
        raise FlavorError(f"malformed class labels in the manifest: {exc}") from exc


def input_spec(names: Sequence[str] | None, count: int | None, categorical: Sequence[str] = ()) -> dict[str, Any]:
    """A table signature from the booster's own feature names (``x0..`` when it has none); the fallback when no
    sample was given. Categorical features are strings; everything else float64."""
    if not names:
        if not count:
            raise FlavorError("cannot infer the input signature: pass sample= (a few rows of training data)")
        names = [f"x{i}" for i in range(int(count))]
    return {"layout": "table", "columns": [
        {"name": str(n), "dtype": "string" if n in categorical else "float64", "nullable": True} for n in names]}


def estimator_kind(options: dict[str, Any], allowed: Sequence[str]) -> tuple[str, str]:
    """``(estimator, kind)`` from a manifest's flavor options, refusing anything outside ``allowed``."""
    estimator, kind = options.get("estimator"), options.get("kind")
    if estimator not in allowed or kind not in KINDS:
        raise FlavorError(f"malformed flavor options: estimator {estimator!r} (known: {', '.join(allowed)}), "
                          f"kind {kind!r}")
    return str(estimator), str(kind)
