"""The matrix twin: scikit-learn estimators fitted on DataFrames predict on berth's validated matrix directly,
only when that provably computes the same thing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import berth


def served(model: object, X: pd.DataFrame, tmp_path: Path, **save: object) -> berth.LoadedModel:
    berth.save(model, tmp_path / "bundle", sample=X.head(20), overwrite=True, **save)
    # the matrix twin is the original model's serving path; a compiled (ONNX) twin would replace it
    return berth.load(tmp_path / "bundle", trust=bool(save), compiled=False)


def as_is(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


@pytest.mark.parametrize("make", [
    lambda: LogisticRegression(max_iter=500),
    lambda: RandomForestClassifier(n_estimators=5, random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
], ids=["logistic", "forest", "scaler-pipeline"])
def test_twin_takes_the_matrix_and_answers_like_the_original(make, iris_data, tmp_path: Path) -> None:
    X, y = iris_data
    model = make().fit(X, y)
    loaded = served(model, X, tmp_path)
    predictor = loaded.predictor
    assert predictor.input_target == "ndarray"
    assert predictor.predicting is not predictor.estimator
    assert hasattr(predictor.estimator, "feature_names_in_")  # the original is untouched
    rows = X.sample(60, random_state=1) + np.random.default_rng(0).normal(0, 0.3, (60, 4))
    np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows))
    np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows))


def test_column_transformer_keeps_dataframes(iris_data, tmp_path: Path) -> None:
    X, y = iris_data
    columns = list(X.columns)
    model = make_pipeline(ColumnTransformer([("scale", StandardScaler(), columns[:2])], remainder="passthrough"),
                          LogisticRegression(max_iter=500)).fit(X, y)
    assert served(model, X, tmp_path).predictor.input_target == "dataframe"


def test_function_transformer_and_voting_keep_dataframes(iris_data, tmp_path: Path) -> None:
    X, y = iris_data
    function = make_pipeline(FunctionTransformer(as_is), LogisticRegression(max_iter=500)).fit(X, y)
    assert served(function, X, tmp_path / "f", format="joblib").predictor.input_target == "dataframe"
    voting = VotingClassifier([("lr", LogisticRegression(max_iter=500)),
                               ("rf", RandomForestClassifier(n_estimators=3))]).fit(X, y)
    loaded = served(voting, X, tmp_path / "v", format="joblib")
    assert loaded.predictor.predicting is loaded.predictor.estimator


def test_integer_columns_keep_dataframes(tmp_path: Path) -> None:
    X = pd.DataFrame({"a": np.arange(40), "b": np.arange(40) % 7})
    y = (X["a"] > 20).astype(int)
    loaded = served(LogisticRegression().fit(X, y), X, tmp_path)
    assert loaded.predictor.input_target == "dataframe"


def test_switched_off_by_environment(iris_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    X, y = iris_data
    monkeypatch.setenv("BERTH_SKLEARN_MATRIX", "0")
    loaded = served(LogisticRegression(max_iter=500).fit(X, y), X, tmp_path)
    assert loaded.predictor.input_target == "dataframe"
    assert loaded.predictor.predicting is loaded.predictor.estimator
