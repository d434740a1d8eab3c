"""LightGBM models in LightGBM's own text model format (``model.txt``).

The scikit-learn wrappers (``LGBMClassifier``, ``LGBMRegressor``, ``LGBMRanker``) and a bare
``lightgbm.Booster`` (from ``lightgbm.train``) alike: the booster is written with ``save_model`` and read back
with ``lightgbm.Booster(model_file=...)``, a text format that runs no code on load. The file keeps the pandas
category mappings of categorical columns; the wrapper's class labels are kept in the manifest, and a classifier
answers as the wrapper does (the most probable class's label; for two classes the booster gives the second
class's probability).
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

WRAPPERS = {"LGBMClassifier": "classifier", "LGBMRegressor": "regressor", "LGBMRanker": "ranker",
            "Booster": "booster"}
PAYLOAD = "model.txt"


class LightGBMFlavor(Flavor):
    name = "lightgbm"
    formats = ("text",)
    priority = 40  # before sklearn: the wrappers are scikit-learn estimators too

    def handles(self, model: Any) -> bool:
        return wrapper_name(model, "lightgbm", tuple(WRAPPERS)) is not None

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        estimator = wrapper_name(model, "lightgbm", tuple(WRAPPERS))
        if estimator is None:
            raise FlavorError(f"the lightgbm flavor saves {', '.join(WRAPPERS)}, not {type(model).__qualname__}")
        kind = WRAPPERS[estimator]
        if kind != "booster":
            if not hasattr(model, "booster_") and not getattr(model, "fitted_", False):
                raise FlavorError(f"cannot save this {estimator}: it is not fitted")
            if callable(getattr(model, "objective", None)):
                raise FlavorError("a custom objective (a Python function) is not kept in LightGBM's model file, "
                                  "so its predictions would differ; save it with flavor='sklearn'")
        booster = model if kind == "booster" else model.booster_
        path = directory / PAYLOAD
        booster.save_model(str(path))
        names = feature_names(model, booster)
        saved: dict[str, Any] = {"estimator": estimator, "kind": kind, "threads": thread_count(options),
                                 # LightGBM takes columns by position, whatever their names: a matrix unless
                                 # pandas categories need mapping
                                 "input": input_kind(None, sample, ["*"] if booster.pandas_categorical else [])}
        if kind == "classifier":
            saved.update(class_options(model.classes_))
        return SavedPayload([PAYLOAD], ["lightgbm", "numpy", "scipy"], make_predictor(booster, saved),
                            {**saved, "input_spec": input_spec(names, booster.num_feature())})

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        import lightgbm

        self.check_format(manifest.format)
        estimator_kind(manifest.flavor_options, tuple(WRAPPERS))
        thread_count(manifest.flavor_options)
        booster = lightgbm.Booster(model_file=str(directory / PAYLOAD))
        return make_predictor(booster, manifest.flavor_options)


def feature_names(model: Any, booster: Any) -> list[str] | None:
    """The names the model was fitted with (a wrapper keeps them as given; the booster's file has them with
    special characters replaced); None for lightgbm's made-up ``Column_0..``."""
    if hasattr(model, "feature_names_in_"):
        return [str(n) for n in model.feature_names_in_]
    names = [str(n) for n in booster.feature_name()]
    if names == [f"Column_{i}" for i in range(len(names))]:
        return None
    return names


def make_predictor(booster: Any, options: dict[str, Any]) -> BoostingPredictor:
    threads = {"num_threads": options["threads"]} if options.get("threads") else {}

    def predict(inputs: Any) -> Any:
        if booster.pandas_categorical and hasattr(inputs, "select_dtypes"):
            # categorical columns arrive as strings; lightgbm maps pandas categories to its own codes
            strings = inputs.select_dtypes(include=["object", "string"]).columns
            if len(strings):
                inputs = inputs.astype({column: "category" for column in strings})
        return booster.predict(inputs, **threads)

    return BoostingPredictor(predict, classes=options.get("classes"),
                             classes_dtype=options.get("classes_dtype"), input_target=options.get("input", "ndarray"))
