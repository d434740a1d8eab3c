"""Bundles on S3, against a real S3-compatible HTTP server on loopback (moto), through fsspec and s3fs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

import berth
from berth.errors import BundleError, FlavorError, IntegrityError, StorageError

if TYPE_CHECKING:
    from tests.s3_fixture import S3

pytestmark = pytest.mark.s3

# what loading a key without a bundle may raise: no manifest (BundleError) or no object (StorageError)
NO_BUNDLE = (BundleError, StorageError)
ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture(scope="module")
def iris() -> tuple[Any, pd.DataFrame]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)
    return model, X


def save_iris(iris: tuple[Any, pd.DataFrame], uri: str, **kwargs: Any) -> berth.Manifest:
    model, X = iris
    options: dict[str, Any] = {"sample": X.head(20), "reference": X, "name": "iris", "flavor": "sklearn"}
    return berth.save(model, uri, **{**options, **kwargs})


def test_save_inspect_verify_load_predict(s3: S3, iris: tuple[Any, pd.DataFrame]) -> None:
    uri = s3.url("iris")
    saved = save_iris(iris, uri, metrics={"accuracy": 0.97})

    assert s3.list_keys("iris") == ["iris/berth.json", "iris/compiled/model.onnx", "iris/model.skops"]
    assert berth.inspect(uri).content_digest == saved.content_digest
    assert berth.inspect(uri).metrics == {"accuracy": 0.97}
    assert berth.verify(uri).content_digest == saved.content_digest
    model = berth.load(uri)
    assert model.source == uri
    assert model.predict([ROW]).tolist() == [0]
    assert model.compiled  # the forest's twin computes in float32: equal within the proof's 1e-5
    np.testing.assert_allclose(model.predict_proba(iris[1].head(5)), iris[0].predict_proba(iris[1].head(5)),
                               rtol=0, atol=1e-5)


def test_save_refuses_to_replace_without_overwrite(s3: S3, iris: tuple[Any, pd.DataFrame]) -> None:
    uri = s3.url("iris")
    save_iris(iris, uri)
    with pytest.raises(BundleError, match="already holds a bundle"):
        save_iris(iris, uri)
    replaced = save_iris(iris, uri, overwrite=True, metrics={"version": 2})
    assert berth.inspect(uri).metrics == {"version": 2}
    assert berth.load(uri).manifest.content_digest == replaced.content_digest


def test_pack_to_s3_and_load_the_archive(s3: S3, iris: tuple[Any, pd.DataFrame]) -> None:
    saved = save_iris(iris, s3.url("iris"))
    archive = s3.url("iris.berth")
    packed = berth.pack(s3.url("iris"), archive)

    assert packed.content_digest == saved.content_digest
    assert "iris.berth" in s3.list_keys()
    assert berth.inspect(archive).content_digest == saved.content_digest
    assert berth.verify(archive).content_digest == saved.content_digest
    assert berth.load(archive).predict([ROW]).tolist() == [0]
    with pytest.raises(BundleError, match="already exists"):
        berth.pack(s3.url("iris"), archive)


def test_unpack_from_s3_to_local_and_back(s3: S3, iris: tuple[Any, pd.DataFrame], tmp_path: Path) -> None:
    saved = save_iris(iris, s3.url("iris"))
    berth.pack(s3.url("iris"), s3.url("iris.berth"))

    local = tmp_path / "iris"
    berth.unpack(s3.url("iris.berth"), local)
    assert sorted(p.name for p in local.iterdir()) == ["berth.json", "compiled", "model.skops"]
    assert (local / "compiled" / "model.onnx").is_file()
    assert berth.load(local).manifest.content_digest == saved.content_digest

    berth.pack(local, tmp_path / "iris.berth")
    berth.unpack(tmp_path / "iris.berth", s3.url("copy"))
    assert s3.list_keys("copy") == ["copy/berth.json", "copy/compiled/model.onnx", "copy/model.skops"]
    assert berth.load(s3.url("copy")).predict([ROW]).tolist() == [0]

    berth.unpack(s3.url("iris.berth"), s3.url("direct"))  # S3 archive to S3 bundle
    assert berth.verify(s3.url("direct")).content_digest == saved.content_digest


class Unpicklable:
    """A model the python flavor accepts, but whose payload cannot be written."""

    def predict(self, data: Any) -> Any:
        return np.zeros(len(data))

    def __reduce__(self) -> Any:
        raise TypeError("this model refuses to be pickled")


def test_flavor_failure_leaves_no_bundle(s3: S3) -> None:
    with pytest.raises(FlavorError, match=r"cannot pickle"):
        berth.save(Unpicklable(), s3.url("broken"), sample=pd.DataFrame({"x": [1.0, 2.0]}), flavor="python")
    assert s3.list_keys("broken") == []
    with pytest.raises(NO_BUNDLE):
        berth.load(s3.url("broken"), trust=True)



@contextmanager
def failing_upload(call: int) -> Iterator[list[str]]:
    """Make the ``call``-th upload through s3fs fail; the real server receives every other request.

    Yields the remote paths of the uploads tried so far.
    """
    import s3fs

    original = s3fs.S3FileSystem.put_file
    uploads: list[str] = []

    def put_file(self: Any, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> Any:
        uploads.append(rpath)
        if len(uploads) == call:
            raise ConnectionResetError(f"injected failure while uploading {rpath}")
        return original(self, lpath, rpath, *args, **kwargs)

    # fsspec binds put_file on each instance as it is made: drop cached instances so berth makes new ones
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(s3fs.S3FileSystem, "put_file", put_file)
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            yield uploads
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.mark.parametrize("call", [1, 2, 3], ids=["payload", "second-payload", "manifest"])
def test_interrupted_upload_leaves_no_manifest(s3: S3, iris: tuple[Any, pd.DataFrame], call: int) -> None:
    """Three files go up (the payload, the compiled twin, then the manifest); a failure at any leaves none."""
    with failing_upload(call) as uploads, pytest.raises(StorageError, match="injected failure"):
        save_iris(iris, s3.url("iris"))
    if call == 3:
        assert Path(uploads[-1]).name == "berth.json"
    else:
        assert Path(uploads[-1]).name in {"model.skops", "model.onnx"} and len(uploads) == call
    assert "iris/berth.json" not in s3.list_keys("iris")
    with pytest.raises(NO_BUNDLE):
        berth.load(s3.url("iris"))


def test_interrupted_overwrite_never_leaves_a_mixed_bundle(s3: S3, iris: tuple[Any, pd.DataFrame]) -> None:
    uri = s3.url("iris")
    save_iris(iris, uri, metrics={"version": 1})
    model, X = iris
    # the new payload and its compiled twin go up, the new manifest does not
    with failing_upload(3) as uploads, pytest.raises(StorageError, match="injected failure"):
        berth.save(model, uri, sample=X.head(20), name="iris", flavor="sklearn", format="joblib",
                   metrics={"version": 2}, overwrite=True)
    assert sorted(Path(u).name for u in uploads[:2]) == ["model.joblib", "model.onnx"]
    assert Path(uploads[2]).name == "berth.json"

    # The old manifest was withdrawn before the first new byte went up: no bundle, rather than a half-new one.
    assert "iris/berth.json" not in s3.list_keys("iris")
    with pytest.raises(BundleError, match=r"berth\.json"):
        berth.load(uri)
    with pytest.raises(NO_BUNDLE):
        berth.inspect(uri)

    # ...and the key can be written again.
    save_iris(iris, uri, metrics={"version": 3}, overwrite=True)
    assert berth.load(uri).manifest.metrics == {"version": 3}


@pytest.mark.parametrize("tamper", ["flip-a-byte", "append", "delete"])
def test_tampered_object_refuses_to_load(s3: S3, iris: tuple[Any, pd.DataFrame], tamper: str) -> None:
    uri = s3.url("iris")
    save_iris(iris, uri)
    berth.load(uri)  # warm berth's filesystem instance and its listing cache

    fs = s3.fresh_fs()
    key = f"{s3.bucket}/iris/model.skops"
    payload = bytearray(fs.cat_file(key))
    if tamper == "flip-a-byte":
        payload[len(payload) // 2] ^= 0xFF
        fs.pipe_file(key, bytes(payload))
    elif tamper == "append":
        fs.pipe_file(key, bytes(payload) + b"\0")
    else:
        fs.rm_file(key)

    with pytest.raises(IntegrityError, match=r"model\.skops"):
        berth.load(uri)
    with pytest.raises(IntegrityError, match=r"model\.skops"):
        berth.verify(uri)
    assert berth.inspect(uri).name == "iris"  # the manifest itself is intact


def test_tampered_archive_on_s3_refuses_to_load(s3: S3, iris: tuple[Any, pd.DataFrame]) -> None:
    save_iris(iris, s3.url("iris"))
    berth.pack(s3.url("iris"), s3.url("iris.berth"))
    fs = s3.fresh_fs()
    key = f"{s3.bucket}/iris.berth"
    archive = bytearray(fs.cat_file(key))
    archive[len(archive) // 2] ^= 0xFF
    fs.pipe_file(key, bytes(archive))
    with pytest.raises(BundleError):  # a corrupt gzip stream or, if it still inflates, a hash mismatch
        berth.load(s3.url("iris.berth"))


def test_missing_bundle_on_s3(s3: S3) -> None:
    with pytest.raises(NO_BUNDLE):
        berth.load(s3.url("nothing-here"))
    with pytest.raises(BundleError, match="is not a berth bundle: it has no berth.json"):
        berth.inspect(s3.url("nothing-here"))
