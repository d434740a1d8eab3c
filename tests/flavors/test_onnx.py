from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from sklearn.datasets import load_diabetes  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

import berth  # noqa: E402
from berth.errors import FlavorError, IntegrityError, PredictionError  # noqa: E402
from berth.flavors import onnx as onnx_flavor  # noqa: E402
from berth.flavors.onnx import OnnxFlavor, check_classifier, check_regressor  # noqa: E402

Iris = tuple[pd.DataFrame, pd.Series]


def request_shapes(frame: pd.DataFrame) -> list[object]:
    """The same rows as a list of rows, a dict of columns and a DataFrame."""
    return [frame.to_numpy().tolist(), {k: list(v) for k, v in frame.to_dict(orient="list").items()}, frame]


@pytest.fixture(scope="module")
def classifier(iris: Iris) -> object:
    features, labels = iris
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(features, labels)


def linear_graph(weights: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """Y = X @ W + B, built by hand: a plain ModelProto of input [N, width]."""
    width, outputs = weights.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["XW"]), helper.make_node("Add", ["XW", "B"], ["Y"])],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", outputs])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_converted_classifier_round_trip(tmp_path: Path, iris: Iris, classifier: object) -> None:
    features, _ = iris
    manifest = berth.save(classifier, tmp_path / "iris", format="onnx", sample=features.head(10))

    assert (manifest.flavor, manifest.format) == ("onnx", "onnx")
    assert [f.path for f in manifest.files] == ["model.onnx"]
    assert {"onnx", "onnxruntime", "numpy"} <= set(manifest.libraries)
    assert not {"skl2onnx", "scikit-learn"} & set(manifest.libraries)  # the converter is not needed to load
    converted_from = manifest.flavor_options["converted_from"]
    assert converted_from == {"skl2onnx": metadata.version("skl2onnx"),
                              "scikit-learn": metadata.version("scikit-learn"),
                              "estimator": "sklearn.pipeline.Pipeline"}
    assert manifest.flavor_options["classes"] == ["setosa", "versicolor", "virginica"]
    assert manifest.signature is not None and manifest.signature.outputs.probabilities

    model = berth.load(tmp_path / "iris")
    assert model.predictor.input_dtype == "float32"
    assert model.classes == ["setosa", "versicolor", "virginica"]
    for request in request_shapes(features):
        assert list(model.predict(request)) == list(classifier.predict(features))  # type: ignore[attr-defined]
        np.testing.assert_allclose(model.predict_proba(request),
                                   classifier.predict_proba(features), atol=1e-4)  # type: ignore[attr-defined]


def test_converted_tree_with_string_labels(tmp_path: Path, iris: Iris) -> None:
    features, labels = iris
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(features.to_numpy(), labels)
    berth.save(tree, tmp_path / "tree", format="onnx", sample=features.to_numpy()[::10])

    model = berth.load(tmp_path / "tree")
    assert list(model.predict(features.to_numpy())) == list(tree.predict(features.to_numpy()))
    assert model.signature.names == ["x0", "x1", "x2", "x3"]


def test_converted_regressor(tmp_path: Path) -> None:
    features, target = load_diabetes(return_X_y=True, as_frame=True)
    regressor = LinearRegression().fit(features, target)
    manifest = berth.save(regressor, tmp_path / "diabetes", format="onnx", sample=features.head(20))

    assert manifest.signature is not None and manifest.signature.outputs.kind == "regression"
    model = berth.load(tmp_path / "diabetes")
    predictions = model.predict(features)
    assert predictions.shape == (len(features),)  # scikit-learn's shape, not skl2onnx's [N, 1]
    np.testing.assert_allclose(predictions, regressor.predict(features), rtol=1e-4)
    assert not model.has_proba
    with pytest.raises(PredictionError):
        model.predict_proba(features.head(2))


def test_plain_model_proto_without_sample_reads_the_graph(tmp_path: Path) -> None:
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    bias = np.array([0.5, -0.5], dtype=np.float32)
    manifest = berth.save(linear_graph(weights, bias), tmp_path / "linear")

    assert (manifest.flavor, manifest.format) == ("onnx", "onnx")
    assert "skl2onnx" not in manifest.libraries
    assert "input_spec" not in manifest.flavor_options
    assert "converted_from" not in manifest.flavor_options
    signature = manifest.signature
    assert signature is not None and signature.layout == "table"
    assert signature.names == ["x0", "x1", "x2"]
    assert {c.dtype for c in signature.columns} == {"float32"}

    rows = [[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]]
    expected = np.asarray(rows, dtype=np.float32) @ weights + bias
    model = berth.load(tmp_path / "linear")
    np.testing.assert_allclose(model.predict(rows), expected, rtol=1e-6)
    np.testing.assert_allclose(model.predict({"x0": [1.0], "x1": [2.0], "x2": [3.0]}), expected[:1], rtol=1e-6)


def test_plain_model_proto_with_a_tensor_input(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["X", "axes"], ["Y"], keepdims=0)],
        "total",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")],
    )
    manifest = berth.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]),
                          tmp_path / "total")

    assert manifest.signature is not None and manifest.signature.layout == "tensor"
    assert manifest.signature.tensor is not None and manifest.signature.tensor.shape == (-1, 2, 2)
    model = berth.load(tmp_path / "total")
    np.testing.assert_allclose(model.predict([[[1, 2], [3, 4]], [[0, 0], [0, 1]]]), [10.0, 1.0])


def test_plain_model_proto_options(tmp_path: Path) -> None:
    proto = linear_graph(np.eye(2, dtype=np.float32), np.zeros(2, dtype=np.float32))
    berth.save(proto, tmp_path / "scores", sample=[[0.2, 0.8]], proba_output="Y", classes=["no", "yes"])
    model = berth.load(tmp_path / "scores")
    assert model.has_proba and model.classes == ["no", "yes"]
    np.testing.assert_allclose(model.predict_proba([[0.3, 0.7]]), [[0.3, 0.7]], rtol=1e-6)

    with pytest.raises(FlavorError, match="not an output"):
        berth.save(proto, tmp_path / "bad", output="Z")
    with pytest.raises(FlavorError, match="unknown option"):
        berth.save(proto, tmp_path / "bad", compress=3)


def test_conversion_needs_a_numeric_sample(tmp_path: Path, iris: Iris, classifier: object) -> None:
    features, _ = iris
    with pytest.raises(FlavorError, match="needs sample="):
        berth.save(classifier, tmp_path / "a", format="onnx")
    text = features.head(5).assign(note="x")
    with pytest.raises(FlavorError, match="non-numeric columns: note"):
        berth.save(classifier, tmp_path / "b", format="onnx", sample=text)
    with pytest.raises(FlavorError, match="training order"):
        berth.save(classifier, tmp_path / "c", format="onnx", sample=features.iloc[:5, ::-1])


def test_a_failed_check_writes_nothing(tmp_path: Path, iris: Iris, classifier: object,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    features, _ = iris
    monkeypatch.setattr(onnx_flavor, "PROBA_ATOL", 0.0)  # float32 against float64: never bit-equal
    with pytest.raises(FlavorError, match="probabilities differ"):
        berth.save(classifier, tmp_path / "iris", format="onnx", sample=features.head(10))
    assert list(tmp_path.iterdir()) == []


def test_check_classifier() -> None:
    labels = np.array(["a", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    check_classifier(labels, labels.copy(), proba, proba + 5e-5, ["a", "b"])
    check_classifier(labels, np.array(["a", "b", "a"]), proba, proba, ["a", "b"])  # row 2 is a tie
    with pytest.raises(FlavorError, match="other labels than the original on 1 of 3"):
        check_classifier(labels, np.array(["b", "b", "b"]), proba, proba, ["a", "b"])
    with pytest.raises(FlavorError, match="other labels"):
        check_classifier(labels, np.array(["a", "a", "b"]), None, None, ["a", "b"])
    with pytest.raises(FlavorError, match="probabilities differ"):
        check_classifier(labels, labels, proba, proba + 1e-3, ["a", "b"])


def test_check_regressor() -> None:
    expected = np.array([150.0, -3.25, 0.0])
    check_regressor(expected, expected.astype(np.float32))
    with pytest.raises(FlavorError, match="differ from the original"):
        check_regressor(expected, expected + np.array([0.0, 0.1, 0.0]))
    with pytest.raises(FlavorError, match="shape"):
        check_regressor(expected, expected.reshape(-1, 1))


def test_a_tampered_payload_is_refused(tmp_path: Path, iris: Iris, classifier: object,
                                       tamper: Callable[[Path], None]) -> None:
    berth.save(classifier, tmp_path / "iris", format="onnx", sample=iris[0].head(10))
    tamper(tmp_path / "iris" / "model.onnx")
    with pytest.raises(IntegrityError, match="model.onnx"):
        berth.load(tmp_path / "iris")


def test_detection(classifier: object) -> None:
    flavor = OnnxFlavor()
    proto = linear_graph(np.eye(2, dtype=np.float32), np.zeros(2, dtype=np.float32))
    assert flavor.handles(proto) and not flavor.handles(classifier)
    assert flavor.accepts(classifier, "onnx") and not flavor.accepts(classifier, "skops")
    assert not flavor.accepts(object(), "onnx")
    assert "onnx" not in flavor.unsafe_formats


def test_importing_the_flavor_imports_no_framework(
        frameworks_imported: Callable[[str, tuple[str, ...]], list[str]]) -> None:
    assert frameworks_imported("berth.flavors.onnx", ("onnx", "onnxruntime", "skl2onnx")) == []
