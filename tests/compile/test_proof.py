"""A twin is built and proven for the model families berth compiles; a twin that answers otherwise is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import berth
from berth.compile import TWIN_FILE, convert
from berth.compile.twin import TwinPredictor
from tests.compile.conftest import DIABETES_X, DIABETES_Y, IRIS_X, IRIS_Y

CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "forest": lambda: RandomForestClassifier(n_estimators=20, random_state=0),
    "boosting": lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
    "hist-boosting": lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
    "pipeline": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
}


def save_and_load(model: Any, path: Path, x: Any) -> tuple[dict[str, Any], berth.LoadedModel, berth.LoadedModel]:
    manifest = berth.save(model, path, sample=x.head(10), reference=x)
    assert manifest.compiled is not None
    twin = berth.load(path, trust=True)
    original = berth.load(path, trust=True, compiled=False)
    return manifest.compiled, twin, original


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
def test_classifier_twins_are_proven_and_answer_as_the_original(kind: str, tmp_path: Path) -> None:
    model = CLASSIFIERS[kind]().fit(IRIS_X, IRIS_Y)
    proof, twin, original = save_and_load(model, tmp_path / kind, IRIS_X)
    assert "refused" not in proof, proof
    assert proof["file"] == TWIN_FILE and (tmp_path / kind / TWIN_FILE).is_file()
    assert proof["rows_tried"] > 2000 and proof["worst_abs_diff"]["proba"] <= proof["tolerance"] == 1e-5
    assert proof["labels_checked"] + proof["label_ties_skipped"] == proof["rows_tried"]
    assert {"onnxruntime", "skl2onnx", "onnx", "scikit-learn"} <= set(proof["versions"])
    assert isinstance(twin.predictor, TwinPredictor) and twin.compiled and not original.compiled
    rows = IRIS_X.sample(40, random_state=1)
    got, want = twin.predict(rows), original.predict(rows)
    assert got.dtype == want.dtype and got.shape == want.shape and (got == want).all()
    got_proba, want_proba = twin.predict_proba(rows), original.predict_proba(rows)
    assert got_proba.dtype == want_proba.dtype and got_proba.shape == want_proba.shape
    np.testing.assert_allclose(got_proba, want_proba, rtol=0, atol=1e-5)
    assert twin.classes == original.classes


def test_string_labels_come_back_as_the_original_labels(tmp_path: Path) -> None:
    names = np.array(["setosa", "versicolor", "virginica"], dtype=object)[IRIS_Y]
    model = LogisticRegression(max_iter=500).fit(IRIS_X, names)
    proof, twin, original = save_and_load(model, tmp_path / "named", IRIS_X)
    assert "refused" not in proof
    got, want = twin.predict(IRIS_X.head(5)), original.predict(IRIS_X.head(5))
    assert got.dtype == want.dtype == object and got.tolist() == want.tolist()


@pytest.mark.parametrize("model", [Ridge(), GradientBoostingRegressor(n_estimators=30, random_state=0)],
                         ids=["ridge", "boosting"])
def test_regressor_twins_state_their_tolerance(model: Any, tmp_path: Path) -> None:
    model.fit(DIABETES_X, DIABETES_Y)
    proof, twin, original = save_and_load(model, tmp_path / "diabetes", DIABETES_X)
    assert "refused" not in proof, proof
    assert proof["worst_abs_diff"]["regression"] <= proof["tolerance"]
    if proof["input_dtype"] == "float32":  # trees: float32 sums, a tolerance relative to the outputs, stated
        assert "relative to the largest output" in proof["tolerance_rule"] and proof["tolerance"] > 1e-5
    else:
        assert proof["tolerance"] == 1e-5 and proof["tolerance_rule"] == "absolute"
    got, want = twin.predict(DIABETES_X.head(30)), original.predict(DIABETES_X.head(30))
    assert got.dtype == want.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=proof["tolerance"])


@pytest.mark.parametrize("kind", ["lightgbm-classifier", "lightgbm-regressor", "xgboost-classifier",
                                  "xgboost-regressor"])
def test_boosting_library_twins(kind: str, tmp_path: Path) -> None:
    """LightGBM and XGBoost models (their own flavors) get twins through onnxmltools, proven like the rest."""
    library, role = kind.split("-")
    module = pytest.importorskip(library)
    pytest.importorskip("onnxmltools")
    if library == "lightgbm":
        model = (module.LGBMClassifier if role == "classifier" else module.LGBMRegressor)(n_estimators=20, verbose=-1)
    else:
        model = (module.XGBClassifier if role == "classifier" else module.XGBRegressor)(n_estimators=20, max_depth=3)
    X, y = (IRIS_X, IRIS_Y) if role == "classifier" else (DIABETES_X, DIABETES_Y)
    proof, twin, original = save_and_load(model.fit(X, y), tmp_path / kind, X)
    if kind == "lightgbm-regressor":
        # its float64 thresholds become float32 in the ONNX graph; the edge rows find a threshold on bmi's
        # minimum, and the proof refuses the twin: the original is served
        assert proof["refused"].startswith("proof failed: outputs differ"), proof
        assert not twin.compiled and twin.runtime.startswith("original lightgbm model")
        return
    assert "refused" not in proof, proof
    assert twin.compiled and proof["rows_tried"] > 2000
    if role == "classifier":
        assert (twin.predict(X) == original.predict(X)).all()
        np.testing.assert_allclose(twin.predict_proba(X), original.predict_proba(X), rtol=0, atol=1e-5)
    else:
        np.testing.assert_allclose(twin.predict(X), original.predict(X), rtol=0,
                                   atol=proof["tolerance"] * (np.abs(original.predict(X)).max()
                                                              if proof["tolerance_rule"] != "absolute" else 1))


def test_a_twin_that_answers_otherwise_is_refused_and_the_original_served(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnx
    from onnx import numpy_helper

    real = convert.sklearn_to_onnx

    def perturbed(model: Any, width: int, dtype: str) -> convert.Converted:
        made = real(model, width, dtype)
        proto = onnx.load_from_string(made.data)
        for index, tensor in enumerate(proto.graph.initializer):  # the coefficients, nudged
            values = numpy_helper.to_array(tensor)
            if values.dtype.kind == "f" and values.size > 1:
                proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(values * 1.01, tensor.name))
        return convert.Converted(proto.SerializeToString(), made.input_dtype, made.label, made.proba, made.versions)

    monkeypatch.setattr(convert, "sklearn_to_onnx", perturbed)
    model = LogisticRegression(max_iter=500).fit(IRIS_X, IRIS_Y)
    manifest = berth.save(model, tmp_path / "bent", sample=IRIS_X.head(10), reference=IRIS_X)
    assert manifest.compiled is not None and set(manifest.compiled) == {"refused"}
    assert manifest.compiled["refused"].startswith("proof failed: probabilities differ by ")
    assert "on row " in manifest.compiled["refused"] and "tolerance is 1e-05" in manifest.compiled["refused"]
    assert not (tmp_path / "bent" / "compiled").exists()
    assert TWIN_FILE not in {entry.path for entry in manifest.files}
    loaded = berth.load(tmp_path / "bent")
    assert not loaded.compiled and "refused: proof failed" in loaded.runtime


def test_a_model_the_converter_does_not_know_is_refused_with_the_reason(tmp_path: Path) -> None:
    from tests.custom_estimators import ThresholdClassifier

    model = ThresholdClassifier().fit(IRIS_X, IRIS_Y)
    manifest = berth.save(model, tmp_path / "custom", sample=IRIS_X.head(5))
    assert manifest.compiled is not None and manifest.compiled["refused"].startswith("conversion failed: ")


def test_no_compile_leaves_no_twin(tmp_path: Path, iris_logistic: LogisticRegression) -> None:
    manifest = berth.save(iris_logistic, tmp_path / "plain", sample=IRIS_X.head(5), compile=False)
    assert manifest.compiled is None and [e.path for e in manifest.files] == ["model.skops"]
    assert not (tmp_path / "plain" / "compiled").exists()
    assert "compiled" not in json.loads((tmp_path / "plain" / "berth.json").read_text()) or \
        json.loads((tmp_path / "plain" / "berth.json").read_text())["compiled"] is None
    assert not berth.load(tmp_path / "plain").compiled


def test_missing_values_are_proven_where_the_signature_allows_them(tmp_path: Path) -> None:
    x = IRIS_X.copy()
    x.iloc[0, 0] = np.nan  # the signature allows missing values in the first column
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(x, IRIS_Y)
    manifest = berth.save(model, tmp_path / "hgb", sample=x.head(10), examples=False)
    proof, twin, original = manifest.compiled or {}, berth.load(tmp_path / "hgb"), \
        berth.load(tmp_path / "hgb", compiled=False, trust=True)
    assert manifest.signature is not None and manifest.signature.columns[0].nullable
    assert proof["missing_allowed"] is True  # histogram boosting handles them: proven on missing rows too
    rows = x.head(3)
    assert (twin.predict(rows) == original.predict(rows)).all()
