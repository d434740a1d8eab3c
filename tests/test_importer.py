"""Importing model files made the tutorial way, and the safety of pickle: nothing runs without trust."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import pathlib
import pickle
import re
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

import berth
from berth.manifest import MANIFEST_NAME

Iris = tuple[pd.DataFrame, pd.Series]


class Planted:
    """Unpickling this touches ``marker``: a stand-in for any code a pickle can run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_planted_pickle_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """The control for the safety tests below: unpickling the planted object does create the file."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(Planted(marker)))
    assert marker.exists()


@pytest.mark.parametrize("compress", [0, ("zlib", 3)], ids=["plain", "zlib"])
def test_a_joblib_file_becomes_a_skops_bundle(tmp_path: Path, iris_forest: RandomForestClassifier,
                                              iris_data: Iris, compress: Any) -> None:
    X, _ = iris_data
    source = tmp_path / "iris_model.joblib"
    joblib.dump(iris_forest, source, compress=compress)
    manifest = berth.import_model(source, tmp_path / "iris", trust=True)

    assert (manifest.name, manifest.flavor, manifest.format) == ("iris", "sklearn", "skops")
    assert manifest.lineage["imported_from"] == {"file": "iris_model.joblib", "sha256": sha256(source),
                                                 "format": "joblib"}
    on_disk = json.loads((tmp_path / "iris" / MANIFEST_NAME).read_text())
    assert on_disk["lineage"]["imported_from"]["sha256"] == sha256(source)
    assert manifest.signature is not None and manifest.signature.names == list(X.columns)
    model = berth.load(tmp_path / "iris")  # skops: no trust needed to load the bundle
    assert (model.predict(X) == iris_forest.predict(X)).all()


@pytest.mark.parametrize("suffix", [".pkl", ".pickle"])
def test_a_pickle_file_imports_and_records_its_format(tmp_path: Path, iris_forest: RandomForestClassifier,
                                                      iris_data: Iris, suffix: str) -> None:
    X, _ = iris_data
    source = tmp_path / f"model{suffix}"
    with source.open("wb") as handle:
        pickle.dump(iris_forest, handle)
    manifest = berth.import_model(source, tmp_path / "bundle", trust=True, name="iris-forest")
    assert manifest.name == "iris-forest"
    assert manifest.lineage["imported_from"]["format"] == "pickle"
    assert (berth.load(tmp_path / "bundle").predict(X.head(20)) == iris_forest.predict(X.head(20))).all()


def test_the_tutorial_wrapper_is_unwrapped_and_its_metadata_kept(tmp_path: Path, iris_data: Iris) -> None:
    X, y = iris_data
    classifier = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)  # fit on an array: no feature names
    metadata = {"feature_names": list(X.columns), "accuracy": 0.97, "trained": "2024-05-01"}
    source = tmp_path / "model.pkl"
    with source.open("wb") as handle:
        pickle.dump({"metadata": metadata, "model": classifier}, handle)
    manifest = berth.import_model(source, tmp_path / "bundle", trust=True)

    assert manifest.metadata == metadata
    assert manifest.signature is not None
    assert manifest.signature.names == list(X.columns)
    assert manifest.signature.example == []  # the names came without rows
    model = berth.load(tmp_path / "bundle")
    records = X.head(5).to_dict(orient="records")
    assert model.predict(records).tolist() == classifier.predict(X.head(5).to_numpy()).tolist()


def test_a_sample_file_gives_the_signature(tmp_path: Path, iris_data: Iris) -> None:
    X, y = iris_data
    classifier = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    source = tmp_path / "model.joblib"
    joblib.dump(classifier, source)
    sample = tmp_path / "sample.csv"
    X.head(10).to_csv(sample, index=False)
    manifest = berth.import_model(source, tmp_path / "bundle", trust=True, sample=str(sample))
    assert manifest.signature is not None
    assert manifest.signature.names == list(X.columns)
    assert manifest.signature.example[0] == X.iloc[0].to_dict()


def test_reference_data_gives_the_drift_baseline(tmp_path: Path, iris_data: Iris) -> None:
    """berth import --reference train.parquet: reference statistics (and, without a sample, the signature);
    the label column of a training file is left out."""
    from typer.testing import CliRunner

    from berth.cli import app

    X, y = iris_data
    classifier = LogisticRegression(max_iter=500).fit(X, y)
    source = tmp_path / "model.joblib"
    joblib.dump(classifier, source)
    training = tmp_path / "train.parquet"
    X.assign(target=y).to_parquet(training)
    result = CliRunner().invoke(app, ["import", str(source), "-o", str(tmp_path / "bundle"), "--trust",
                                      "--reference", str(training)])
    assert result.exit_code == 0, result.output
    assert "reference statistics of 150 rows attached" in result.output
    manifest = berth.inspect(tmp_path / "bundle")
    assert manifest.signature is not None and manifest.signature.names == list(X.columns)
    assert manifest.reference["rows"] == 150 and list(manifest.reference["features"]) == list(X.columns)
    assert manifest.reference["predictions"]["type"] in ("numeric", "categorical")
    bad = tmp_path / "bad.csv"
    X.drop(columns=X.columns[0]).to_csv(bad, index=False)
    result = CliRunner().invoke(app, ["import", str(source), "-o", str(tmp_path / "other"), "--trust",
                                      "--sample", str(training), "--reference", str(bad)])
    assert result.exit_code == 1 and "lacks the model's input columns" in result.output


def test_without_trust_a_pickle_or_joblib_file_is_refused(tmp_path: Path,
                                                          iris_forest: RandomForestClassifier) -> None:
    joblib.dump(iris_forest, tmp_path / "model.joblib")
    with (tmp_path / "model.pkl").open("wb") as handle:
        pickle.dump(iris_forest, handle)
    for name in ("model.joblib", "model.pkl"):
        with pytest.raises(berth.TrustError, match="--trust"):
            berth.import_model(tmp_path / name, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_importing_a_planted_pickle_without_trust_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for name in ("evil.pkl", "evil.joblib"):
        source = tmp_path / name
        source.write_bytes(pickle.dumps(Planted(marker)))
        with pytest.raises(berth.TrustError):
            berth.import_model(source, tmp_path / "bundle")
    assert not marker.exists()
    assert not (tmp_path / "bundle").exists()


def planted_pickle_bundle(tmp_path: Path, model: Any, marker: Path, *, rehash: bool) -> Path:
    """A pickle-format bundle whose payload is replaced by the planted pickle (re-hashed, or not)."""
    bundle = tmp_path / "bundle"
    berth.save(model, bundle, format="pickle")
    payload = bundle / "model.pkl"
    payload.write_bytes(pickle.dumps(Planted(marker)))
    if rehash:  # a consistent, signed-looking bundle: only the trust check stands in the way
        manifest = json.loads((bundle / MANIFEST_NAME).read_text())
        manifest["files"] = [{"path": "model.pkl", "sha256": sha256(payload), "size": payload.stat().st_size},
                             *[entry for entry in manifest["files"] if entry["path"] != "model.pkl"]]
        (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    return bundle


def test_loading_a_pickle_bundle_without_trust_runs_nothing(tmp_path: Path,
                                                            iris_forest: RandomForestClassifier) -> None:
    marker = tmp_path / "pwned"
    bundle = planted_pickle_bundle(tmp_path, iris_forest, marker, rehash=True)
    berth.verify(bundle)  # the files match the manifest: integrity alone would not stop it
    with pytest.raises(berth.TrustError):
        berth.load(bundle)
    assert not marker.exists()


def test_with_trust_the_sha256_is_checked_before_unpickling(tmp_path: Path,
                                                            iris_forest: RandomForestClassifier) -> None:
    marker = tmp_path / "pwned"
    bundle = planted_pickle_bundle(tmp_path, iris_forest, marker, rehash=False)
    with pytest.raises(berth.IntegrityError, match=r"model\.pkl"):
        berth.load(bundle, trust=True)
    assert not marker.exists()


def test_format_joblib_is_written_when_asked_and_needs_trust_to_load(
        tmp_path: Path, iris_forest: RandomForestClassifier, iris_data: Iris) -> None:
    X, _ = iris_data
    joblib.dump(iris_forest, tmp_path / "model.joblib")
    manifest = berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True, format="joblib")
    assert manifest.format == "joblib"
    with pytest.raises(berth.TrustError):
        berth.load(tmp_path / "bundle")
    assert (berth.load(tmp_path / "bundle", trust=True).predict(X) == iris_forest.predict(X)).all()


@pytest.mark.parametrize(("attribute", "why"), [(2 + 1j, "cannot write"), (re.compile("a+"), "does not load back")],
                         ids=["skops cannot write it", "skops cannot read it back"])
def test_a_model_skops_cannot_store_fails_with_a_hint_to_use_joblib(
        tmp_path: Path, iris_data: Iris, attribute: Any, why: str) -> None:
    X, y = iris_data
    classifier = LogisticRegression(max_iter=500).fit(X, y)
    classifier.note_ = attribute  # an attribute skops cannot handle, as custom code sometimes leaves behind
    joblib.dump(classifier, tmp_path / "model.joblib")
    with pytest.raises(berth.FlavorError, match=why) as caught:
        berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True)
    assert "--format joblib" in caught.value.message
    assert not (tmp_path / "bundle").exists()
    manifest = berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True, format="joblib")
    assert manifest.format == "joblib"


def test_an_existing_bundle_is_replaced_only_with_overwrite(tmp_path: Path,
                                                            iris_forest: RandomForestClassifier) -> None:
    joblib.dump(iris_forest, tmp_path / "model.joblib")
    berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True)
    with pytest.raises(berth.BundleError, match="overwrite"):
        berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True)
    berth.import_model(tmp_path / "model.joblib", tmp_path / "bundle", trust=True, overwrite=True)


def test_a_wrapper_with_a_separate_preprocessor_is_refused(tmp_path: Path, iris_data: Iris) -> None:
    from sklearn.preprocessing import StandardScaler

    X, y = iris_data
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(max_iter=500).fit(scaler.transform(X), y)
    with (tmp_path / "model.pkl").open("wb") as handle:
        pickle.dump({"model": model, "scaler": scaler}, handle)
    with pytest.raises(berth.FlavorError, match="scaler.*Pipeline"):
        berth.import_model(tmp_path / "model.pkl", tmp_path / "bundle", trust=True)


def test_an_unknown_file_name_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("not a model")
    with pytest.raises(berth.UsageError, match=r"\.joblib"):
        berth.import_model(tmp_path / "model.txt", tmp_path / "bundle", trust=True)


ONNX_FLAVOR = importlib.util.find_spec("berth.flavors.onnx") is not None


@pytest.mark.skipif(not ONNX_FLAVOR, reason="the onnx flavor (berth.flavors.onnx) is not written yet")
def test_an_onnx_file_imports_without_trust(tmp_path: Path, iris_data: Iris) -> None:
    onnx = pytest.importorskip("onnx")
    skl2onnx = pytest.importorskip("skl2onnx")
    X, y = iris_data
    classifier = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    proto = skl2onnx.to_onnx(classifier, X.to_numpy()[:1].astype(np.float32),
                             options={id(classifier): {"zipmap": False}})
    source = tmp_path / "iris.onnx"
    onnx.save(proto, str(source))
    sample = tmp_path / "sample.parquet"
    X.head(10).to_parquet(sample)
    manifest = berth.import_model(source, tmp_path / "bundle", sample=sample)
    assert (manifest.flavor, manifest.format) == ("onnx", "onnx")
    assert manifest.lineage["imported_from"] == {"file": "iris.onnx", "sha256": sha256(source), "format": "onnx"}
    assert manifest.signature is not None and manifest.signature.names == list(X.columns)
    model = berth.load(tmp_path / "bundle")
    assert (model.predict(X) == classifier.predict(X.to_numpy())).mean() > 0.98
