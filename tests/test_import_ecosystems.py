"""``berth import`` of MLflow model directories (written by the real MLflow: tests/fixtures/mlflow/README.md) and
of the native model files of XGBoost, LightGBM and CatBoost."""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import berth
from berth.cli import app
from berth.importer import import_model

if TYPE_CHECKING:
    from tests.s3_fixture import S3

pytest_plugins = ["tests.s3_fixture"]

Copy = Callable[[str], Path]
FIXTURES = Path(__file__).parent / "fixtures" / "mlflow"
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@pytest.fixture
def mlflow_model(tmp_path: Path) -> Copy:
    """A copy of one fixture directory, free to be spoiled by the test."""
    def copy(name: str) -> Path:
        target = tmp_path / "mlflow" / name
        shutil.copytree(FIXTURES / name, target)
        return target
    return copy


def expected(name: str) -> dict:
    return json.loads((FIXTURES / name / "expected.json").read_text())


def frame(name: str) -> pd.DataFrame:
    rows = expected(name)["rows"]
    return pd.DataFrame(rows, columns=COLUMNS if len(rows[0]) == 4 else None)


def check_predictions(bundle: Path, name: str, *, trust: bool = False) -> berth.LoadedModel:
    loaded = berth.load(bundle, trust=trust)  # no trust but for pyfunc: the bundle is in a safe format
    want = expected(name)
    data = frame(name) if len(want["rows"][0]) == 4 else want["rows"]
    got = loaded.predict(data)
    if isinstance(want["predictions"][0], str):
        assert got.tolist() == want["predictions"]
    else:
        np.testing.assert_allclose(np.asarray(got).ravel(), want["predictions"], rtol=1e-6)
    if "probabilities" in want:
        np.testing.assert_allclose(loaded.predict_proba(data), want["probabilities"], rtol=1e-6)
    return loaded


def test_sklearn_skops_model_imports_without_trust(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("sklearn_iris")
    manifest = import_model(source, tmp_path / "out")
    assert (manifest.flavor, manifest.format) == ("sklearn", "skops")
    assert manifest.signature is not None and manifest.signature.names == COLUMNS
    assert [c.dtype for c in manifest.signature.columns] == ["float64"] * 4
    assert manifest.signature.example[0] == dict(zip(COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))
    assert manifest.signature.outputs.classes == ["setosa", "versicolor", "virginica"]
    origin = manifest.lineage["imported_from"]
    assert origin["flavor"] == "sklearn" and origin["read_as"] == "skops" and origin["mlflow_version"] == "3.17.2"
    assert origin["model_uuid"] and manifest.metrics == {} and manifest.params == {}
    check_predictions(tmp_path / "out", "sklearn_iris")


def test_sklearn_cloudpickle_needs_trust_and_becomes_skops(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("sklearn_cloudpickle")
    with pytest.raises(berth.TrustError, match=r"MLflow's sklearn flavor stores this model as a cloudpickle file "
                                                r"\(model\.pkl\).*--trust"):
        import_model(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    manifest = import_model(source, tmp_path / "out", trust=True)
    assert (manifest.flavor, manifest.format) == ("sklearn", "skops")
    assert sorted(f.path for f in manifest.files) == ["compiled/model.onnx", "model.skops"]  # with its twin
    check_predictions(tmp_path / "out", "sklearn_cloudpickle")


def test_tensor_signature_without_example(tmp_path: Path, mlflow_model: Copy) -> None:
    manifest = import_model(mlflow_model("sklearn_numpy"), tmp_path / "out", trust=True)
    assert manifest.signature is not None
    assert manifest.signature.names == [f"x{i}" for i in range(10)]
    assert manifest.signature.example == []  # made up from the signature: nothing to show
    assert manifest.signature.outputs.kind == "regression"
    check_predictions(tmp_path / "out", "sklearn_numpy")


@pytest.mark.parametrize(("name", "flavor", "payload"), [
    ("xgboost_iris", "xgboost", "model.ubj"),
    ("lightgbm_booster", "lightgbm", "model.txt"),
    ("lightgbm_sklearn", "lightgbm", "model.txt"),
    ("catboost_iris", "catboost", "model.cbm"),
])
def test_boosting_flavors_go_to_native_bundles(tmp_path: Path, mlflow_model: Copy, name: str, flavor: str,
                                               payload: str) -> None:
    pytest.importorskip(flavor)
    manifest = import_model(mlflow_model(name), tmp_path / "out")  # native files (or skops): no trust needed
    assert manifest.flavor == flavor
    assert [f.path for f in manifest.files if not f.path.startswith("compiled/")] == [payload]  # and maybe a twin
    assert manifest.signature is not None and manifest.signature.names == COLUMNS
    loaded = check_predictions(tmp_path / "out", name)
    if "probabilities" in expected(name):
        assert loaded.has_proba


def test_pyfunc_only_needs_trust(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("pyfunc_only")
    with pytest.raises(berth.TrustError, match="only the python_function flavor.*--trust"):
        import_model(source, tmp_path / "out")
    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(berth.FlavorError, match="pip install mlflow"):
            import_model(source, tmp_path / "out", trust=True)
    else:
        manifest = import_model(source, tmp_path / "out", trust=True)
        assert manifest.flavor == "python"
        check_predictions(tmp_path / "out", "pyfunc_only", trust=True)


def test_the_mlmodel_file_itself_names_the_directory(tmp_path: Path, mlflow_model: Copy) -> None:
    manifest = import_model(mlflow_model("xgboost_iris") / "MLmodel", tmp_path / "out")
    assert manifest.flavor == "xgboost"


def write_mlmodel(directory: Path, text: str) -> None:
    (directory / "MLmodel").write_text(text)


def test_tracking_server_uris_say_how_to_get_the_directory(tmp_path: Path) -> None:
    with pytest.raises(berth.UsageError, match=r"mlflow artifacts download -u runs:/0a1b/model -d DIR"):
        import_model("runs:/0a1b/model", tmp_path / "out")


def test_a_directory_without_mlmodel(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(berth.BundleError, match="not an MLflow model directory: it has no MLmodel file"):
        import_model(tmp_path / "empty", tmp_path / "out")


@pytest.mark.parametrize(("text", "message"), [
    ("flavors: [unclosed\n", "not valid YAML"),
    ("- a list\n", "must hold a mapping"),
    ("mlflow_version: 2.0\n", "no flavors mapping"),
    ("flavors:\n  sklearn: 3\n", "flavor 'sklearn' must be a mapping"),
    ("flavors: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
])
def test_malformed_mlmodel(tmp_path: Path, mlflow_model: Copy, text: str, message: str) -> None:
    source = mlflow_model("xgboost_iris")
    write_mlmodel(source, text)
    with pytest.raises(berth.BundleError, match=message):
        import_model(source, tmp_path / "out")


def test_no_supported_flavor_names_the_flavors_it_has(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("xgboost_iris")
    # as MLflow writes them: the framework's flavor next to python_function, which only wraps it
    write_mlmodel(source, "flavors:\n  h2o: {data: model.h2o}\n  python_function: {loader_module: mlflow.h2o}\n")
    with pytest.raises(berth.FlavorError, match=r"it has h2o, python_function; berth reads xgboost, lightgbm, "
                                                r"catboost, sklearn, or a model whose only flavor is python_function"):
        import_model(source, tmp_path / "out", trust=True)


def test_a_corrupt_model_file_is_one_clear_error(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("xgboost_iris")
    (source / "model.ubj").write_bytes(b"not a model")
    with pytest.raises(berth.FlavorError, match="cannot read the xgboost model of this MLflow directory"):
        import_model(source, tmp_path / "out")


def test_pyfunc_with_artifacts_is_refused(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("pyfunc_only")
    text = (source / "MLmodel").read_text().replace("    streamable: false\n",
                                                    "    streamable: false\n    artifacts: {vocab: {path: v.txt}}\n")
    write_mlmodel(source, text)
    with pytest.raises(berth.FlavorError, match="has artifacts"):
        import_model(source, tmp_path / "out", trust=True)


@pytest.mark.parametrize(("data", "message"), [
    ("../outside.ubj", "points outside the model directory"),
    ("sub/../../outside.ubj", "points outside the model directory"),
    ("/etc/passwd", "is an absolute path"),
    ("C:/model.ubj", "is an absolute path"),
    ("missing.ubj", "which the model directory does not have"),
    ("[1, 2]", "must be a relative path"),
])
def test_paths_in_mlmodel_stay_inside(tmp_path: Path, mlflow_model: Copy, data: str, message: str) -> None:
    source = mlflow_model("xgboost_iris")
    shutil.copy(source / "model.ubj", source.parent / "outside.ubj")
    text = (source / "MLmodel").read_text().replace("data: model.ubj", f"data: {data}")
    write_mlmodel(source, text)
    with pytest.raises(berth.BundleError, match=message):
        import_model(source, tmp_path / "out")


def test_symlink_out_of_the_directory_is_refused(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("xgboost_iris")
    shutil.move(source / "model.ubj", tmp_path / "elsewhere.ubj")
    (source / "model.ubj").symlink_to(tmp_path / "elsewhere.ubj")
    with pytest.raises(berth.BundleError, match="points outside"):
        import_model(source, tmp_path / "out")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("model_class: xgboost.sklearn.XGBClassifier", "model_class: os.system", "not one berth recreates"),
    ("inputs: '[", "inputs: 'x[", "signature.inputs is not valid JSON"),
    ('"type": "double", "name": "sepal length (cm)"', '"type": "binary", "name": "sepal length (cm)"',
     "has type 'binary'"),
])
def test_hostile_fields(tmp_path: Path, mlflow_model: Copy, old: str, new: str, message: str) -> None:
    source = mlflow_model("xgboost_iris")
    text = (source / "MLmodel").read_text()
    assert old in text
    write_mlmodel(source, text.replace(old, new, 1))
    with pytest.raises(berth.BerthError, match=message):
        import_model(source, tmp_path / "out")


def test_skops_trusted_types_in_mlmodel_are_not_taken_on_its_word(tmp_path: Path, mlflow_model: Copy) -> None:
    """The MLmodel may call anything trusted; berth checks the skops file against its own list."""
    import skops.io

    from tests.custom_estimators import ThresholdClassifier

    source = mlflow_model("sklearn_iris")
    skops.io.dump(ThresholdClassifier(5.0).fit(frame("sklearn_iris").to_numpy(), [0, 1]), source / "model.skops")
    text = (source / "MLmodel").read_text().replace(
        "skops_trusted_types: null", "skops_trusted_types: [tests.custom_estimators.ThresholdClassifier]")
    write_mlmodel(source, text)
    with pytest.raises(berth.TrustError, match=r"tests\.custom_estimators\.ThresholdClassifier"):
        import_model(source, tmp_path / "out")
    manifest = import_model(source, tmp_path / "out", trust=True)
    assert manifest.flavor == "sklearn"


def test_optional_columns_metadata_and_metrics(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("sklearn_iris")
    text = (source / "MLmodel").read_text().replace('"name": "sepal length (cm)", "required": true',
                                                    '"name": "sepal length (cm)", "required": false')
    write_mlmodel(source, text + "metadata:\n  team: fraud\nmetrics:\n  accuracy: 0.97\n")
    manifest = import_model(source, tmp_path / "out")
    assert manifest.signature is not None
    assert [c.nullable for c in manifest.signature.columns] == [True, False, False, False]
    assert manifest.metadata == {"team": "fraud"} and manifest.metrics == {"accuracy": 0.97}
    with pytest.raises(berth.BundleError, match="already holds a bundle"):
        import_model(source, tmp_path / "out")
    write_mlmodel(source, text + "metrics:\n  accuracy: high\n")
    with pytest.raises(berth.BundleError, match="metrics must be numbers; accuracy"):
        import_model(source, tmp_path / "other")


def test_cli_imports_an_mlflow_directory(tmp_path: Path, mlflow_model: Copy) -> None:
    source = mlflow_model("sklearn_cloudpickle")
    refused = CliRunner().invoke(app, ["import", str(source), "-o", str(tmp_path / "out")])
    assert refused.exit_code == 1 and "--trust" in refused.output and "Traceback" not in refused.output
    result = CliRunner().invoke(app, ["import", str(source), "-o", str(tmp_path / "out"), "--trust", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["flavor"] == "sklearn"
    unknown = mlflow_model("xgboost_iris")
    write_mlmodel(unknown, "flavors:\n  h2o: {}\n")
    result = CliRunner().invoke(app, ["import", str(unknown), "-o", str(tmp_path / "other")])
    assert result.exit_code == 1 and "it has h2o" in result.output and "Traceback" not in result.output


@pytest.mark.s3
def test_import_from_s3(tmp_path: Path, s3: S3) -> None:
    fs = s3.fresh_fs()
    for file in (FIXTURES / "xgboost_iris").iterdir():
        fs.put_file(str(file), f"{s3.bucket}/models/xgb/{file.name}")
    manifest = import_model(s3.url("models/xgb"), tmp_path / "out")
    assert manifest.flavor == "xgboost"
    check_predictions(tmp_path / "out", "xgboost_iris")
    with pytest.raises(berth.BerthError):
        import_model(s3.url("models/nothing"), tmp_path / "none")


# --------------------------------------------------------------------------- native files of the boosting libraries


def test_native_model_files(tmp_path: Path) -> None:
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    catboost = pytest.importorskip("catboost")
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    labels = y.map({0: "a", 1: "b", 2: "c"})
    xgb = xgboost.XGBClassifier(n_estimators=4, max_depth=2, n_jobs=1).fit(X, y)
    xgb.save_model(tmp_path / "model.json")
    booster = lightgbm.train({"verbose": -1, "num_threads": 1}, lightgbm.Dataset(X, y.astype(float)),
                             num_boost_round=4)
    booster.save_model(tmp_path / "model.txt")
    cat = catboost.CatBoostClassifier(iterations=4, verbose=False, thread_count=1,
                                      allow_writing_files=False).fit(X, labels)
    cat.save_model(str(tmp_path / "model.cbm"))
    cases = [("model.json", "xgboost", xgb.predict(X)), ("model.txt", "lightgbm", booster.predict(X)),
             ("model.cbm", "catboost", cat.predict(X).ravel())]
    for file, flavor, want in cases:
        result = CliRunner().invoke(app, ["import", str(tmp_path / file), "-o", str(tmp_path / flavor),
                                          "--sample", str(_rows_csv(tmp_path, X))])
        assert result.exit_code == 0, result.output
        loaded = berth.load(tmp_path / flavor)
        assert loaded.manifest.flavor == flavor
        assert loaded.manifest.lineage["imported_from"]["format"] == flavor
        if want.dtype.kind in "OU":
            assert loaded.predict(X).tolist() == want.tolist()
        else:
            np.testing.assert_allclose(loaded.predict(X), want, rtol=1e-6)
    assert berth.load(tmp_path / "xgboost").manifest.flavor_options["estimator"] == "XGBClassifier"
    assert berth.load(tmp_path / "catboost").classes == ["a", "b", "c"]
    (tmp_path / "bad.json").write_text('{"not": "xgboost"}')
    result = CliRunner().invoke(app, ["import", str(tmp_path / "bad.json"), "-o", str(tmp_path / "bad")])
    assert result.exit_code == 1 and "cannot read bad.json as a xgboost model" in result.output


def _rows_csv(directory: Path, X: pd.DataFrame) -> Path:
    path = directory / "rows.csv"
    if not path.exists():
        X.head(10).to_csv(path, index=False)
    return path
