"""The sklearn flavor: skops by default with a trusted-type check; joblib and pickle only with trust."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth
from berth.manifest import MANIFEST_NAME
from tests.custom_estimators import ThresholdClassifier

X, Y = load_iris(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def forest() -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, Y)


def test_forest_in_skops_loads_without_trust(tmp_path: Path, forest: RandomForestClassifier) -> None:
    berth.save(forest, tmp_path / "m", sample=X.head())
    assert berth.load(tmp_path / "m").predict(X).tolist() == forest.predict(X).tolist()


@pytest.mark.parametrize(("format", "options", "payload"), [
    ("joblib", {"compress": ("zlib", 3)}, "model.joblib"),
    ("joblib", {}, "model.joblib"),
    ("pickle", {}, "model.pkl"),
])
def test_pickle_based_formats_need_trust(tmp_path: Path, forest: RandomForestClassifier, format: str,
                                         options: dict[str, object], payload: str) -> None:
    manifest = berth.save(forest, tmp_path / "m", sample=X.head(), format=format, **options)
    assert manifest.format == format and (tmp_path / "m" / payload).is_file()
    with pytest.raises(berth.TrustError, match="runs code while loading"):
        berth.load(tmp_path / "m")
    assert berth.load(tmp_path / "m", trust=True).predict(X.head()).tolist() == forest.predict(X.head()).tolist()


def test_joblib_compression_option_is_honoured(tmp_path: Path, forest: RandomForestClassifier) -> None:
    berth.save(forest, tmp_path / "raw", format="joblib", compress=0)
    berth.save(forest, tmp_path / "zlib", format="joblib", compress=("zlib", 3))
    assert (tmp_path / "zlib" / "model.joblib").stat().st_size < (tmp_path / "raw" / "model.joblib").stat().st_size


def test_unknown_format_is_refused(tmp_path: Path, forest: RandomForestClassifier) -> None:
    with pytest.raises(berth.FlavorError, match="no flavor writes"):
        berth.save(forest, tmp_path / "m", format="yaml")
    with pytest.raises(berth.FlavorError, match="writes skops, joblib, pickle"):
        berth.save(forest, tmp_path / "m", flavor="sklearn", format="yaml")
    assert not (tmp_path / "m").exists()


def test_skops_refuses_untrusted_types_and_lists_them(tmp_path: Path) -> None:
    model = ThresholdClassifier(0.3).fit(np.zeros((2, 1)), [0, 1])
    berth.save(model, tmp_path / "custom", sample=[[0.1], [0.9]])
    with pytest.raises(berth.TrustError, match=r"tests\.custom_estimators\.ThresholdClassifier") as caught:
        berth.load(tmp_path / "custom")
    assert caught.value.details == [{"loc": ["payload", "model.skops"],
                                     "msg": "untrusted type tests.custom_estimators.ThresholdClassifier"}]
    named = berth.load(tmp_path / "custom", trusted_types=["tests.custom_estimators.ThresholdClassifier"])
    assert named.predict([[0.1], [0.9]]).tolist() == [0, 1]
    assert berth.load(tmp_path / "custom", trust=True).predict([[0.5]]).tolist() == [1]


def test_lightgbm_through_its_sklearn_api(tmp_path: Path) -> None:
    """Asked for: by default a LightGBM wrapper goes to the lightgbm flavor (tests/flavors/test_boosting.py)."""
    lightgbm = pytest.importorskip("lightgbm")
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, Y)
    manifest = berth.save(model, tmp_path / "lgbm", sample=X.head(), flavor="sklearn")
    assert manifest.flavor == "sklearn" and "lightgbm" in manifest.libraries
    loaded = berth.load(tmp_path / "lgbm")
    np.testing.assert_allclose(loaded.predict_proba(X.head(20)), model.predict_proba(X.head(20)))


def test_trust_does_not_skip_the_hash_check(tmp_path: Path, forest: RandomForestClassifier) -> None:
    berth.save(forest, tmp_path / "m", format="pickle")
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    manifest["files"][0]["sha256"] = "0" * 64
    (tmp_path / "m" / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(berth.IntegrityError):
        berth.load(tmp_path / "m", trust=True)
