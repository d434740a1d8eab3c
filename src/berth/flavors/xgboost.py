"""XGBoost models in XGBoost's own format: UBJSON (``model.ubj``, the default) or JSON (``model.json``).

Both the scikit-learn wrappers (``XGBClassifier``, ``XGBRegressor``, ``XGBRanker``, ``XGBRFClassifier``,
``XGBRFRegressor``) and a bare ``xgboost.Booster`` (from ``xgboost.train``) are written with ``save_model`` and
read back with ``load_model``: a tree model in a documented data format, no pickle, so loading needs no trust.
A wrapper's file keeps its scikit-learn attributes; the wrapper class is recreated from a fixed list.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.errors import FlavorError
from berth.flavors.base import Flavor, Predictor, SavedPayload
from berth.flavors.boosting import (
    BoostingPredictor,
    class_options,
    estimator_kind,
    input_kind,
    input_spec,
    thread_count,
    wrapper_name,
)

if TYPE_CHECKING:
    from berth.manifest import Manifest

WRAPPERS = {"XGBClassifier": "classifier", "XGBRFClassifier": "classifier", "XGBRegressor": "regressor",
            "XGBRFRegressor": "regressor", "XGBRanker": "ranker", "Booster": "booster"}
PAYLOAD = {"ubj": "model.ubj", "json": "model.json"}
SUFFIXES = {".ubj": "ubj", ".json": "json"}


class XGBoostFlavor(Flavor):
    name = "xgboost"
    formats = ("ubj", "json")
    priority = 40  # before sklearn: the wrappers are scikit-learn estimators too

    def handles(self, model: Any) -> bool:
        return wrapper_name(model, "xgboost", tuple(WRAPPERS)) is not None

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        estimator = wrapper_name(model, "xgboost", tuple(WRAPPERS))
        if estimator is None:
            raise FlavorError(f"the xgboost flavor saves {', '.join(WRAPPERS)}, not {type(model).__qualname__}")
        try:
            booster = model if estimator == "Booster" else model.get_booster()
        except Exception as exc:  # sklearn's NotFittedError, xgboost's XGBoostError
            raise FlavorError(f"cannot save this {estimator}: {exc}") from exc
        kind = WRAPPERS[estimator]
        path = directory / PAYLOAD[format]
        model.save_model(str(path))
        names, categories = booster.feature_names, categorical(booster)
        saved: dict[str, Any] = {"estimator": estimator, "kind": kind, "input": input_kind(names, sample, categories),
                                 "threads": thread_count(options)}
        if kind == "classifier":
            saved.update(class_options(model.classes_))
        predictor = make_predictor(model, saved)  # the caller's model, threads untouched
        return SavedPayload([path.name], ["xgboost", "numpy", "scipy"], predictor,
                            {**saved, "input_spec": input_spec(names, booster.num_features(), categories)})

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        import xgboost

        format = self.check_format(manifest.format)
        options = manifest.flavor_options
        estimator, _ = estimator_kind(options, tuple(WRAPPERS))
        model = getattr(xgboost, estimator)()
        model.load_model(str(directory / PAYLOAD[format]))
        threads = thread_count(options)
        if threads and estimator == "Booster":
            model.set_param({"nthread": threads})
        elif threads:
            model.set_params(n_jobs=threads)
        return make_predictor(model, options)


def categorical(booster: Any) -> list[str]:
    names, types = booster.feature_names or [], booster.feature_types or []
    return [name for name, kind in zip(names, types, strict=False) if kind == "c"]


def make_predictor(model: Any, options: dict[str, Any]) -> BoostingPredictor:
    kind = options["kind"]
    if kind == "booster":
        raw = booster_predict(model)
    else:
        raw = model.predict_proba if kind == "classifier" else model.predict
    return BoostingPredictor(raw, classes=options.get("classes"), classes_dtype=options.get("classes_dtype"),
                             input_target=options.get("input", "ndarray"))


def booster_predict(booster: Any) -> Any:
    import xgboost

    def predict(inputs: Any) -> Any:
        if isinstance(inputs, np.ndarray):  # in the signature's order, which is the model's
            return booster.inplace_predict(inputs, validate_features=False)
        return booster.predict(xgboost.DMatrix(inputs, enable_categorical=True))

    return predict
