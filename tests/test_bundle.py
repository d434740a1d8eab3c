"""Saving and loading bundles: manifest contents, signatures, atomic writes, integrity, overwrite rules."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import berth
from berth.manifest import MANIFEST_NAME, Manifest


@pytest.fixture
def iris_bundle(tmp_path: Path, iris_forest: RandomForestClassifier, iris_data: tuple[pd.DataFrame, pd.Series]) -> Path:
    X, _ = iris_data
    path = tmp_path / "iris"
    berth.save(iris_forest, path, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               params=iris_forest.get_params(), tags={"team": "ml"}, description="iris forest")
    return path


def test_round_trip_predicts_like_the_original(iris_bundle: Path, iris_forest: RandomForestClassifier,
                                               iris_data: tuple[pd.DataFrame, pd.Series]) -> None:
    X, _ = iris_data
    model = berth.load(iris_bundle)
    expected = iris_forest.predict(X)
    assert (model.predict(X) == expected).all()
    assert (model.predict(X.to_numpy()) == expected).all()
    assert (model.predict(X.to_dict(orient="records")) == expected).all()
    assert (model.predict(X.to_dict(orient="list")) == expected).all()
    assert model.predict([5.1, 3.5, 1.4, 0.2]).tolist() == iris_forest.predict(X.head(1)).tolist()
    # the compiled twin (proven at save) computes the forest in float32: equal within the proof's 1e-5
    assert model.compiled
    np.testing.assert_allclose(model.predict_proba(X.head(10)), iris_forest.predict_proba(X.head(10)), rtol=0,
                               atol=1e-5)
    assert model.classes == [0, 1, 2]


def test_manifest_records_what_the_issue_names(iris_bundle: Path) -> None:
    manifest = json.loads((iris_bundle / MANIFEST_NAME).read_text())
    assert manifest["format_version"] == 1
    assert (manifest["name"], manifest["flavor"], manifest["format"]) == ("iris", "sklearn", "skops")
    assert manifest["created_at"].endswith("+00:00")
    assert manifest["python"] == ".".join(map(str, sys.version_info[:3]))
    assert {"scikit-learn", "numpy", "scipy", "skops", "berth"} <= manifest["libraries"].keys()
    entry, twin = manifest["files"]  # the payload, and the compiled twin (proven, see tests/compile)
    assert twin["path"] == "compiled/model.onnx" == manifest["compiled"]["file"]
    assert entry["path"] == "model.skops" and len(entry["sha256"]) == 64
    assert entry["size"] == (iris_bundle / "model.skops").stat().st_size
    assert manifest["metrics"] == {"accuracy": 0.96}
    assert manifest["params"]["n_estimators"] == 10
    assert manifest["tags"] == {"team": "ml"} and manifest["description"] == "iris forest"
    assert manifest["lineage"]["created_by"]["user"]
    assert manifest["reference"]["rows"] == 150
    assert manifest["reference"]["fingerprint"].startswith("sha256:")
    assert manifest["signature"]["outputs"] == {"kind": "classification", "dtype": "int64", "shape": [-1],
                                                "classes": [0, 1, 2], "probabilities": True}
    assert manifest["signature"]["columns"][0]["name"] == "sepal length (cm)"
    assert len(manifest["signature"]["example"]) == 3


def test_lineage_names_the_git_commit_of_the_working_directory(tmp_path: Path, iris_forest: RandomForestClassifier,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "train.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    assert berth.save(iris_forest, tmp_path / "a").lineage["git"] == {"commit": head, "dirty": False}
    monkeypatch.chdir(tmp_path)
    assert "git" not in berth.save(iris_forest, tmp_path / "b").lineage


def test_manifest_round_trips_through_json(iris_bundle: Path) -> None:
    manifest = berth.inspect(iris_bundle)
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.content_digest == manifest.content_digest


def test_signature_without_sample_comes_from_the_model(tmp_path: Path, iris_forest: RandomForestClassifier,
                                                       iris_data: tuple[pd.DataFrame, pd.Series]) -> None:
    manifest = berth.save(iris_forest, tmp_path / "named")
    assert manifest.signature is not None
    assert manifest.signature.names == list(iris_data[0].columns)
    assert manifest.signature.outputs.classes == [0, 1, 2]
    X, y = iris_data
    unnamed = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    manifest = berth.save(unnamed, tmp_path / "unnamed")
    assert manifest.signature is not None and manifest.signature.names == ["x0", "x1", "x2", "x3"]
    assert berth.load(tmp_path / "unnamed").predict({"x0": 5.1, "x1": 3.5, "x2": 1.4, "x3": 0.2}).tolist() == [0]


@pytest.mark.parametrize("form", ["ndarray", "rows", "records", "columns"])
def test_signature_from_each_sample_form(tmp_path: Path, iris_data: tuple[pd.DataFrame, pd.Series], form: str) -> None:
    X, y = iris_data
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    head = X.head(5)
    sample = {"ndarray": head.to_numpy(), "rows": head.to_numpy().tolist(),
              "records": head.to_dict(orient="records"), "columns": head.to_dict(orient="list")}[form]
    signature = berth.save(model, tmp_path / form, sample=sample).signature
    assert signature is not None and len(signature.columns) == 4
    assert all(c.dtype == "float64" for c in signature.columns)
    assert berth.load(tmp_path / form).predict(head.to_numpy()).tolist() == model.predict(head.to_numpy()).tolist()


def test_mixed_type_pipeline_with_missing_values(tmp_path: Path) -> None:
    frame = pd.DataFrame({"age": [22.0, None, 40.0, 35.0, 51.0, 19.0], "city": ["Oslo", "Rome", "Oslo", "Lima",
                                                                                 "Rome", "Lima"]})
    target = [0, 1, 0, 1, 1, 0]
    model = make_pipeline(
        ColumnTransformer([("num", "passthrough", ["age"]),
                           ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])]),
        RandomForestClassifier(n_estimators=5, random_state=0),
    ).fit(frame.fillna(30), target)
    signature = berth.save(model, tmp_path / "mixed", sample=frame).signature
    assert signature is not None
    assert [(c.name, c.dtype, c.nullable) for c in signature.columns] == [("age", "float64", True),
                                                                          ("city", "string", False)]
    loaded = berth.load(tmp_path / "mixed")
    assert loaded.predict([{"age": 30.0, "city": "Oslo"}]).tolist() == model.predict(
        pd.DataFrame({"age": [30.0], "city": ["Oslo"]})).tolist()
    with pytest.raises(berth.SignatureError) as caught:
        loaded.predict([{"age": 30.0, "city": 5}])
    assert caught.value.details == [{"loc": [0, "city"], "msg": "expected a string, got int 5"}]


def test_text_pipeline_takes_a_flat_list_of_strings(tmp_path: Path) -> None:
    texts = ["win money now", "meeting at noon", "free prize claim", "lunch tomorrow?"]
    model = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [1, 0, 1, 0])
    signature = berth.save(model, tmp_path / "spam", sample=texts, reference=texts).signature
    assert signature is not None and signature.layout == "column"
    loaded = berth.load(tmp_path / "spam")
    assert loaded.predict(["claim your free money"]).tolist() == model.predict(["claim your free money"]).tolist()
    assert loaded.manifest.reference is not None
    assert loaded.manifest.reference["features"]["input"]["type"] == "categorical"


def test_regressor_output_and_prediction_reference(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(X, y)
    manifest = berth.save(model, tmp_path / "diabetes", sample=X.head(), reference=X)
    assert manifest.signature is not None
    assert manifest.signature.outputs.kind == "regression" and not manifest.signature.outputs.probabilities
    assert manifest.reference is not None
    predictions = manifest.reference["predictions"]
    assert predictions["type"] == "numeric" and predictions["count"] == len(X)
    assert predictions["mean"] == pytest.approx(float(model.predict(X).mean()))
    with pytest.raises(berth.PredictionError, match="class probabilities"):
        berth.load(tmp_path / "diabetes").predict_proba(X.head(1))


def test_existing_bundle_is_kept_unless_overwrite(iris_bundle: Path, iris_forest: RandomForestClassifier) -> None:
    before = (iris_bundle / MANIFEST_NAME).read_text()
    with pytest.raises(berth.BundleError, match="already holds a bundle"):
        berth.save(iris_forest, iris_bundle)
    assert (iris_bundle / MANIFEST_NAME).read_text() == before
    berth.save(iris_forest, iris_bundle, overwrite=True, name="replaced")
    assert berth.inspect(iris_bundle).name == "replaced"
    assert [p.name for p in iris_bundle.parent.iterdir()] == ["iris"]  # no staging or retired leftovers


def test_overwrite_refuses_a_directory_that_is_not_a_bundle(tmp_path: Path,
                                                             iris_forest: RandomForestClassifier) -> None:
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(berth.BundleError, match="not a bundle"):
        berth.save(iris_forest, precious, overwrite=True)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    class Broken:
        def predict(self, data: object) -> object:
            raise RuntimeError("boom")

    with pytest.raises(berth.FlavorError, match="failed to predict on the sample"):
        berth.save(Broken(), tmp_path / "broken", sample=[[1.0, 2.0]])
    assert list(tmp_path.iterdir()) == []


def test_a_crash_during_save_never_leaves_a_valid_looking_bundle(tmp_path: Path) -> None:
    """A process that dies just before publication leaves nothing at the target path."""
    script = textwrap.dedent(f"""
        import os
        from sklearn.linear_model import LogisticRegression
        import berth, berth.storage
        berth.storage.publish = lambda *a, **k: os._exit(9)
        model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
        berth.save(model, {str(tmp_path / "crashed")!r}, sample=[[0.5]])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 9, result.stderr
    assert not (tmp_path / "crashed").exists()
    with pytest.raises(berth.BundleError, match="does not exist"):
        berth.load(tmp_path / "crashed")


def test_tampered_missing_or_resized_payload_refuses_to_load(iris_bundle: Path) -> None:
    payload = iris_bundle / "model.skops"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    payload.write_bytes(bytes(data))
    with pytest.raises(berth.IntegrityError, match=r"model\.skops \(sha256 does not match"):
        berth.load(iris_bundle)
    with pytest.raises(berth.IntegrityError):
        berth.verify(iris_bundle)
    payload.write_bytes(bytes(data[:-1]))
    with pytest.raises(berth.IntegrityError, match="size is"):
        berth.load(iris_bundle)
    payload.unlink()
    with pytest.raises(berth.IntegrityError, match="file is missing") as caught:
        berth.load(iris_bundle)
    assert caught.value.details == [{"loc": ["files", "model.skops"], "msg": "file is missing"}]


def test_manifest_path_outside_the_bundle_is_refused(iris_bundle: Path) -> None:
    manifest = json.loads((iris_bundle / MANIFEST_NAME).read_text())
    manifest["files"][0]["path"] = "../../etc/passwd"
    (iris_bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(berth.BundleError, match=r"files\[0\]\.path: '\.\./\.\./etc/passwd'"):
        berth.load(iris_bundle)  # refused when the manifest is read, before any path is joined


def test_unreadable_manifests_are_clear_errors(tmp_path: Path, iris_bundle: Path) -> None:
    with pytest.raises(berth.BundleError, match="has no berth.json"):
        berth.load(tmp_path)
    (iris_bundle / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(berth.BundleError, match="not valid JSON"):
        berth.load(iris_bundle)
    (iris_bundle / MANIFEST_NAME).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(berth.BundleError, match="unsupported bundle format version 99"):
        berth.load(iris_bundle)
    (iris_bundle / MANIFEST_NAME).write_text(json.dumps({"format_version": 1, "name": "x"}))
    with pytest.raises(berth.BundleError, match="malformed manifest"):
        berth.load(iris_bundle)


def test_pack_and_unpack_round_trip(iris_bundle: Path, tmp_path: Path,
                                    iris_data: tuple[pd.DataFrame, pd.Series]) -> None:
    archive = tmp_path / "iris.berth"
    berth.pack(iris_bundle, archive)
    assert berth.load(archive).predict(iris_data[0].head(3)).tolist() == [0, 0, 0]
    manifest = berth.unpack(archive, tmp_path / "copy")
    assert manifest.content_digest == berth.inspect(iris_bundle).content_digest
    assert berth.verify(tmp_path / "copy").name == "iris"
    with pytest.raises(berth.BundleError, match="already"):
        berth.unpack(archive, tmp_path / "copy")
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(berth.BundleError, match="not a readable berth archive"):
        berth.load(archive)
