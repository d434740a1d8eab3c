"""scikit-learn estimators and pipelines (and xgboost / lightgbm through their scikit-learn API).

Saved with skops by default: loading constructs only types on a trusted list and runs no pickled code. skops'
own defaults leave a few plain data holders out (the tree structure of every forest, ``OrderedDict``, the
boosters of lightgbm and xgboost, which rebuild themselves from a model string); berth trusts those too (see
``docs/design-notes.md``). Anything else must be named by the caller (``trusted_types=[...]``) or the whole file
trusted (``trust=True``). ``joblib`` and ``pickle`` are written only when asked and loaded only with trust.
"""

from __future__ import annotations

import functools
import pickle
import zipfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth.errors import FlavorError, TrustError
from berth.flavors.base import Flavor, Predictor, SavedPayload, class_path
from berth.flavors.sklearn_matrix import matrix_twin
from berth.flavors.skops_import import import_skops_io

if TYPE_CHECKING:
    from berth.manifest import Manifest
    from berth.signature import Signature

BERTH_TRUSTED_TYPES = frozenset({
    "sklearn.tree._tree.Tree",
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "lightgbm.sklearn.LGBMRegressor",
    "lightgbm.sklearn.LGBMRanker",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRanker",
})
PAYLOAD = {"skops": "model.skops", "joblib": "model.joblib", "pickle": "model.pkl"}
FORMAT_LIBRARY = {"skops": "skops", "joblib": "joblib", "pickle": None}


# Estimators that cast their input to float32 before predicting (scikit-learn's trees and tree ensembles): a
# finite float64 beyond float32's range makes them raise. Validating the input as float32 instead gives the same
# predictions and turns such a value into a 422 that names the field, not the model's error as a 500.
FLOAT32_MODULES = ("sklearn.tree.", "sklearn.ensemble._forest", "sklearn.ensemble._gb", "sklearn.ensemble._iforest")


class SklearnPredictor(Predictor):
    def __init__(self, estimator: Any, signature: Signature | None = None) -> None:
        self.estimator = estimator
        # Predictions go through the matrix twin when there is one (see berth.flavors.sklearn_matrix).
        twin = matrix_twin(estimator, signature)
        self.predicting = twin if twin is not None else estimator
        self.input_target = "dataframe" if hasattr(self.predicting, "feature_names_in_") else "ndarray"
        if type(estimator).__module__.startswith(FLOAT32_MODULES):
            self.input_dtype = "float32"
        classes = getattr(estimator, "classes_", None)
        self.classes = list(classes) if classes is not None else None
        self.bounded_time = library_code_only(estimator)

    @property
    def has_proba(self) -> bool:
        return hasattr(self.estimator, "predict_proba")

    def predict(self, inputs: Any) -> np.ndarray:
        return np.asarray(self.predicting.predict(inputs))

    def predict_proba(self, inputs: Any) -> np.ndarray:
        if not self.has_proba:
            return super().predict_proba(inputs)
        return np.asarray(self.predicting.predict_proba(inputs))


LIBRARY_MODULES = ("sklearn.", "numpy", "scipy.")


def library_code_only(estimator: Any) -> bool:
    """Whether ``estimator`` and everything in its parameters (pipeline steps, nested estimators, functions) is
    scikit-learn's (or NumPy's, SciPy's) own code: no user-written ``predict`` or ``FunctionTransformer`` function
    that could block."""
    if not type(estimator).__module__.startswith("sklearn."):
        return False
    try:
        params = estimator.get_params(deep=True)
    except Exception:
        return False
    for value in params.values():
        if isinstance(value, list | tuple):  # Pipeline.steps, ColumnTransformer.transformers: checked deeply
            continue
        if hasattr(value, "get_params") or callable(value):
            module = getattr(value, "__module__", None) or type(value).__module__
            if not str(module).startswith(LIBRARY_MODULES):
                return False
    return True


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())  # scans every installed distribution: once per process


def estimator_libraries(model: Any) -> list[str]:
    """Distributions that the estimator and every estimator nested in it come from."""
    roots = {type(model).__module__.split(".")[0]}
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        for value in get_params(deep=True).values():
            if hasattr(value, "fit"):
                roots.add(type(value).__module__.split(".")[0])
    mapping = _distributions()
    names = {"scikit-learn", "numpy", "scipy"}
    for root in roots:
        names.update(mapping.get(root, []))
    return sorted(names)


class SklearnFlavor(Flavor):
    name = "sklearn"
    formats = ("skops", "joblib", "pickle")
    unsafe_formats = frozenset({"joblib", "pickle"})
    priority = 50

    def handles(self, model: Any) -> bool:
        return "sklearn.base.BaseEstimator" in class_path(model)

    def save(self, model: Any, directory: Path, *, format: str, sample: Any, options: dict[str, Any]) -> SavedPayload:
        path = directory / PAYLOAD[format]
        try:
            if format == "skops":
                import_skops_io().dump(model, path, compression=zipfile.ZIP_DEFLATED,
                                       compresslevel=options.get("compresslevel", 6))
            elif format == "joblib":
                import joblib

                joblib.dump(model, path, compress=options.get("compress", 3))
            else:
                with path.open("wb") as handle:
                    pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
        except (TypeError, ValueError, pickle.PicklingError, AttributeError) as exc:
            raise FlavorError(f"cannot write this model as {format}: {exc}") from exc
        extra = FORMAT_LIBRARY[format]
        libraries = estimator_libraries(model) + ([extra] if extra else [])
        return SavedPayload([path.name], libraries, SklearnPredictor(model))

    def load(self, directory: Path, manifest: Manifest, *, trust: bool, trusted_types: list[str]) -> Predictor:
        format = manifest.format
        self.require_trust(format, trust)
        path = self.payload(directory, manifest, PAYLOAD[format])
        if format == "skops":
            return SklearnPredictor(load_skops(path, trust=trust, trusted_types=trusted_types), manifest.signature)
        import joblib

        return SklearnPredictor(joblib.load(path), manifest.signature)  # joblib and pickle files alike


def load_skops(path: Path, *, trust: bool, trusted_types: list[str]) -> Any:
    skops_io = import_skops_io()  # skops' own trusted-type list, built faster (see berth.flavors.skops_import)
    untrusted = skops_io.get_untrusted_types(file=path)
    refused = sorted(set(untrusted) - BERTH_TRUSTED_TYPES - set(trusted_types))
    if refused and not trust:
        raise TrustError(
            f"{path.name} holds types outside the trusted set: {', '.join(refused)}; if you trust this bundle's "
            "source, name them with trusted_types=[...] (--trusted-type) or pass trust=True (--trust)",
            [{"loc": ["payload", path.name], "msg": f"untrusted type {t}"} for t in refused],
        )
    return skops_io.load(path, trusted=untrusted)
