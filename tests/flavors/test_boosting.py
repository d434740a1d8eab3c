"""The xgboost, lightgbm and catboost flavors: native model files (never pickle), chosen by ``berth.save``.

Tests of the native files and their loaders save with ``compile=False``: with onnxmltools installed the bundle would
also carry a compiled twin and load it instead (twins of these libraries: tests/compile/test_proof.py)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

import berth
from berth.manifest import MANIFEST_NAME

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
catboost = pytest.importorskip("catboost")

PAYLOADS = {"xgboost": ["model.ubj"], "lightgbm": ["model.txt"], "catboost": ["model.cbm"]}
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True, as_frame=True)


def classifier(library: str) -> Any:
    if library == "xgboost":
        return xgboost.XGBClassifier(n_estimators=8, max_depth=3, n_jobs=1)
    if library == "lightgbm":
        return lightgbm.LGBMClassifier(n_estimators=8, verbose=-1, n_jobs=1)
    return catboost.CatBoostClassifier(iterations=8, depth=3, verbose=False, thread_count=1, allow_writing_files=False)


def regressor(library: str) -> Any:
    if library == "xgboost":
        return xgboost.XGBRegressor(n_estimators=8, max_depth=3, n_jobs=1)
    if library == "lightgbm":
        return lightgbm.LGBMRegressor(n_estimators=8, verbose=-1, n_jobs=1)
    return catboost.CatBoostRegressor(iterations=8, depth=3, verbose=False, thread_count=1, allow_writing_files=False)


def payload_files(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != MANIFEST_NAME)


LIBRARIES = ["xgboost", "lightgbm", "catboost"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_classifier_round_trip_on_iris(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], library: str) -> None:
    X, labels = iris
    y = labels.astype("category").cat.codes.astype("int64")  # integer labels: what XGBClassifier accepts
    model = classifier(library).fit(X, y)
    manifest = berth.save(model, tmp_path / "m", sample=X.head(), reference=X, compile=False)
    assert manifest.flavor == library
    assert payload_files(tmp_path / "m") == PAYLOADS[library]  # the library's own file, no pickle
    assert [f.path for f in manifest.files] == PAYLOADS[library]
    assert library in manifest.libraries
    assert manifest.signature is not None and manifest.signature.outputs.classes == [0, 1, 2]
    assert manifest.signature.names == list(X.columns)
    assert set(manifest.reference["features"]) == set(X.columns) and "predictions" in manifest.reference
    loaded = berth.load(tmp_path / "m")
    assert loaded.predict(X).tolist() == model.predict(X).ravel().tolist()
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    assert loaded.predict(X.to_numpy().tolist()[:3]).tolist() == model.predict(X.head(3)).ravel().tolist()


@pytest.mark.parametrize("library", ["lightgbm", "catboost"])  # XGBClassifier itself refuses string labels
def test_string_class_labels_come_back_as_strings(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series],
                                                 library: str) -> None:
    X, labels = iris
    model = classifier(library).fit(X, labels)
    manifest = berth.save(model, tmp_path / "m", sample=X.head())
    assert manifest.signature is not None and manifest.signature.outputs.classes == list(model.classes_)
    assert manifest.flavor_options["classes_dtype"] == "string"
    loaded = berth.load(tmp_path / "m")
    predicted = loaded.predict(X)
    assert predicted.tolist() == model.predict(X).ravel().tolist()
    assert set(predicted.tolist()) == {"setosa", "versicolor", "virginica"}
    assert loaded.classes == list(model.classes_)
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("library", LIBRARIES)
def test_binary_classifier_probabilities(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], library: str) -> None:
    X, labels = iris
    y = (labels == "virginica").astype("int64")
    model = classifier(library).fit(X, y)
    berth.save(model, tmp_path / "m", sample=X.head(), compile=False)
    loaded = berth.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X), rtol=1e-6)
    assert loaded.predict(X).tolist() == model.predict(X).ravel().tolist()


@pytest.mark.parametrize("library", LIBRARIES)
def test_regressor_round_trip_on_diabetes(tmp_path: Path, library: str) -> None:
    model = regressor(library).fit(DIABETES_X, DIABETES_Y)
    manifest = berth.save(model, tmp_path / "m", sample=DIABETES_X.head(), reference=DIABETES_X, compile=False)
    assert manifest.flavor == library and payload_files(tmp_path / "m") == PAYLOADS[library]
    assert manifest.signature is not None and manifest.signature.outputs.kind == "regression"
    assert manifest.reference is not None and manifest.reference["predictions"]["type"] == "numeric"
    loaded = berth.load(tmp_path / "m")
    assert not loaded.has_proba
    np.testing.assert_allclose(loaded.predict(DIABETES_X), model.predict(DIABETES_X), rtol=1e-6)


def test_signature_without_a_sample_comes_from_the_model(tmp_path: Path) -> None:
    model = regressor("lightgbm").fit(DIABETES_X, DIABETES_Y)
    manifest = berth.save(model, tmp_path / "m")
    assert manifest.signature is not None and manifest.signature.names == list(DIABETES_X.columns)
    unnamed = regressor("xgboost").fit(DIABETES_X.to_numpy(), DIABETES_Y)
    manifest = berth.save(unnamed, tmp_path / "n")
    assert manifest.signature is not None and manifest.signature.names == [f"x{i}" for i in range(10)]
    np.testing.assert_allclose(berth.load(tmp_path / "n").predict(DIABETES_X.to_numpy()),
                               unnamed.predict(DIABETES_X.to_numpy()), rtol=1e-6)


def test_xgboost_json_format(tmp_path: Path) -> None:
    model = regressor("xgboost").fit(DIABETES_X, DIABETES_Y)
    manifest = berth.save(model, tmp_path / "m", sample=DIABETES_X.head(), format="json", compile=False)
    assert manifest.format == "json" and payload_files(tmp_path / "m") == ["model.json"]
    assert "learner" in json.loads((tmp_path / "m" / "model.json").read_text())
    np.testing.assert_allclose(berth.load(tmp_path / "m").predict(DIABETES_X), model.predict(DIABETES_X), rtol=1e-6)


def native_booster(library: str) -> Any:
    if library == "xgboost":
        return xgboost.train({"max_depth": 3, "nthread": 1}, xgboost.DMatrix(DIABETES_X, DIABETES_Y),
                             num_boost_round=5)
    if library == "lightgbm":
        return lightgbm.train({"verbose": -1, "num_threads": 1}, lightgbm.Dataset(DIABETES_X, DIABETES_Y),
                              num_boost_round=5)
    model = catboost.CatBoost({"iterations": 5, "verbose": False, "thread_count": 1, "allow_writing_files": False})
    return model.fit(DIABETES_X, DIABETES_Y)


def native_predict(library: str, model: Any, X: pd.DataFrame) -> np.ndarray:
    if library == "xgboost":
        return model.predict(xgboost.DMatrix(X))
    return np.asarray(model.predict(X))


@pytest.mark.parametrize("library", LIBRARIES)
def test_native_boosters(tmp_path: Path, library: str) -> None:
    model = native_booster(library)
    manifest = berth.save(model, tmp_path / "m", sample=DIABETES_X.head())
    assert manifest.flavor == library and manifest.flavor_options["kind"] == "booster"
    assert payload_files(tmp_path / "m") == PAYLOADS[library]
    np.testing.assert_allclose(berth.load(tmp_path / "m").predict(DIABETES_X),
                               native_predict(library, model, DIABETES_X), rtol=1e-6)


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_corrupt_payload_is_refused(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], library: str,
                                      tamper: Callable[[Path], None]) -> None:
    X, labels = iris
    berth.save(classifier(library).fit(X, labels.astype("category").cat.codes), tmp_path / "m", sample=X.head())
    tamper(tmp_path / "m" / PAYLOADS[library][0])
    with pytest.raises(berth.IntegrityError, match=PAYLOADS[library][0]):
        berth.load(tmp_path / "m")


def test_catboost_categorical_features(tmp_path: Path) -> None:
    frame = pd.DataFrame({"colour": ["red", "green", "blue", "red"] * 10, "size": np.arange(40, dtype="float64")})
    target = (frame["colour"] == "red").astype(int) + (frame["size"] > 20)
    model = catboost.CatBoostClassifier(iterations=5, verbose=False, thread_count=1, allow_writing_files=False,
                                        cat_features=["colour"]).fit(frame, target)
    manifest = berth.save(model, tmp_path / "m", sample=frame.head())
    assert manifest.signature is not None and manifest.signature.columns[0].dtype == "string"
    loaded = berth.load(tmp_path / "m")
    rows = [{"colour": "red", "size": 30.0}, {"colour": "blue", "size": 1.0}]
    assert loaded.predict(rows).tolist() == model.predict(pd.DataFrame(rows)).ravel().tolist()


def test_lightgbm_pandas_categories(tmp_path: Path) -> None:
    frame = pd.DataFrame({"colour": pd.Categorical(["red", "green", "blue", "red"] * 25),
                          "size": np.arange(100, dtype="float64")})
    target = (frame["colour"] == "red").astype(float) * 10 + frame["size"]
    model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1, min_child_samples=2, n_jobs=1).fit(frame, target)
    berth.save(model, tmp_path / "m", sample=frame.head())
    rows = [{"colour": "red", "size": 30.0}, {"colour": "blue", "size": 30.0}]
    expected = model.predict(pd.DataFrame(rows).astype({"colour": frame["colour"].dtype}))
    np.testing.assert_allclose(berth.load(tmp_path / "m").predict(rows), expected, rtol=1e-6)


def test_sklearn_flavor_still_on_request(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    X, labels = iris
    model = classifier("lightgbm").fit(X, labels)
    manifest = berth.save(model, tmp_path / "m", sample=X.head(), flavor="sklearn")
    assert manifest.flavor == "sklearn" and manifest.format == "skops"


def test_unfitted_models_are_refused(tmp_path: Path) -> None:
    for library in LIBRARIES:
        with pytest.raises(berth.FlavorError, match="not fitted|cannot save"):
            berth.save(classifier(library), tmp_path / library, sample=DIABETES_X.head())
        assert not (tmp_path / library).exists()


@pytest.mark.parametrize("library", LIBRARIES)
def test_malformed_flavor_options_are_refused(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series],
                                              library: str) -> None:
    X, labels = iris
    berth.save(regressor(library).fit(X, labels.astype("category").cat.codes), tmp_path / "m", sample=X.head(),
               compile=False)
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    manifest["flavor_options"]["estimator"] = "os.system"
    (tmp_path / "m" / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(berth.FlavorError, match="malformed flavor options"):
        berth.load(tmp_path / "m")


def test_frameworks_are_imported_lazily(frameworks_imported: Callable[[str, tuple[str, ...]], list[str]]) -> None:
    for module in ("berth.flavors.xgboost", "berth.flavors.lightgbm", "berth.flavors.catboost"):
        assert frameworks_imported(module, ("xgboost", "lightgbm", "catboost", "sklearn")) == []


def test_served_through_create_app(tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    from tests.serving.conftest import make_client

    X, labels = iris
    bundles = {}
    for library in LIBRARIES:
        y = labels if library != "xgboost" else labels.astype("category").cat.codes
        model = classifier(library).fit(X, y)
        bundles[library] = (model, tmp_path / library)
        berth.save(model, tmp_path / library, sample=X.head(), name=library)
    rows = X.iloc[::15].to_numpy().tolist()
    for model, path in bundles.values():
        with warnings.catch_warnings(), make_client([path]) as client:
            response = client.post("/predict", json={"instances": rows, "probabilities": True})
            assert response.status_code == 200, response.text
            payload = response.json()
            assert payload["predictions"] == model.predict(X.iloc[::15]).ravel().tolist()
            assert payload["classes"] == list(model.classes_)
            np.testing.assert_allclose(payload["probabilities"], model.predict_proba(X.iloc[::15]), rtol=1e-6)
            invocations = client.post("/invocations", json={"dataframe_split": {
                "columns": list(X.columns), "data": rows[:2]}})
            assert invocations.status_code == 200, invocations.text


@pytest.mark.parametrize("library", LIBRARIES)
def test_library_versions_are_recorded_and_checked(tmp_path: Path, library: str) -> None:
    from berth.environment import installed_version

    module = {"xgboost": xgboost, "lightgbm": lightgbm, "catboost": catboost}[library]
    manifest = berth.save(regressor(library).fit(DIABETES_X, DIABETES_Y), tmp_path / "m", sample=DIABETES_X.head())
    assert manifest.libraries[library] == module.__version__ == installed_version(library)  # xgboost-cpu too
    data = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    data["libraries"][library] = "0.1.0"
    (tmp_path / "m" / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(berth.EnvironmentMismatchError, match=f"{library} 0.1.0 was used to save this bundle"):
        berth.load(tmp_path / "m")


@pytest.mark.parametrize("library", LIBRARIES)
def test_threads_option(tmp_path: Path, library: str) -> None:
    model = regressor(library).fit(DIABETES_X, DIABETES_Y)
    manifest = berth.save(model, tmp_path / "one", sample=DIABETES_X.head())
    assert manifest.flavor_options["threads"] == 1  # the default: one thread per prediction
    assert manifest.flavor_options["input"] == "ndarray"  # numeric features in the model's order: a matrix
    manifest = berth.save(model, tmp_path / "all", sample=DIABETES_X.head(), threads=0)
    assert manifest.flavor_options["threads"] == 0
    np.testing.assert_allclose(berth.load(tmp_path / "all").predict(DIABETES_X), model.predict(DIABETES_X),
                               rtol=1e-6)
    with pytest.raises(berth.FlavorError, match="threads must be a whole number"):
        berth.save(model, tmp_path / "bad", sample=DIABETES_X.head(), threads="many")
