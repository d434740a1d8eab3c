"""CatBoost models in CatBoost's own binary format (``model.cbm``).

``CatBoostClassifier``, ``CatBoostRegressor``, ``CatBoostRanker`` and the plain ``catboost.CatBoost`` are written
with ``save_model(format="cbm")`` and read back with ``load_model(format="cbm")``: a flatbuffers model file, no
pickle, so loading needs no trust. Categorical features stay strings in the signature (CatBoost hashes them
itself); the classifier's labels, strings included, are kept in the manifest exactly as the model had them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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

WRAPPERS = {"CatBoostClassifier": "classifier", "CatBoostRegressor": "regressor", "CatBoostRanker": "ranker",
            "CatBoost": "booster"}
PAYLOAD = "model.cbm"


class CatBoostFlavor(Flavor):
    name = "catboost"
    formats = ("cbm",)
    priority = 40  # before sklearn (the wrappers look like scikit-learn estimators) and the python catch-all

    def handles(self, model: Any) -> bool:
        return wrapper_name(model, "catboost", tuple(WRAPPERS)) is not None

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        estimator = wrapper_name(model, "catboost", tuple(WRAPPERS))
        if estimator is None:
            raise FlavorError(f"the catboost flavor saves {', '.join(WRAPPERS)}, not {type(model).__qualname__}")
        if not model.is_fitted():
            raise FlavorError(f"cannot save this {estimator}: it is not fitted")
        kind = WRAPPERS[estimator]
        path = directory / PAYLOAD
        model.save_model(str(path), format="cbm")
        names = list(model.feature_names_ or [])
        categorical = [names[i] for i in model.get_cat_feature_indices() if 0 <= i < len(names)]
        named = bool(categorical) or names != [str(i) for i in range(len(names))]
        saved: dict[str, Any] = {"estimator": estimator, "kind": kind, "threads": thread_count(options),
                                 "input": input_kind(names if named else None, sample, categorical)}
        if kind == "classifier":
            saved.update(class_options(model.classes_))
        return SavedPayload([PAYLOAD], ["catboost", "numpy"], make_predictor(model, saved),
                            {**saved, "input_spec": input_spec(names if named else None, len(names), categorical)})

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        import catboost

        self.check_format(manifest.format)
        estimator, _ = estimator_kind(manifest.flavor_options, tuple(WRAPPERS))
        thread_count(manifest.flavor_options)
        model = getattr(catboost, estimator)()
        model.load_model(str(directory / PAYLOAD), format="cbm")
        return make_predictor(model, manifest.flavor_options)


def make_predictor(model: Any, options: dict[str, Any]) -> BoostingPredictor:
    method = model.predict_proba if options["kind"] == "classifier" else model.predict
    threads = options.get("threads") or -1  # catboost's -1: every core

    def raw(inputs: Any) -> Any:
        return method(inputs, thread_count=threads)

    return BoostingPredictor(raw, classes=options.get("classes"), classes_dtype=options.get("classes_dtype"),
                             input_target=options.get("input", "ndarray"))
