"""The Open Inference Protocol's REST routes, tensors and error shape."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.serving.conftest import IRIS_X, TestClient, expected

ROWS = IRIS_X.iloc[[0, 60, 120]].to_numpy().tolist()
NAMES = list(IRIS_X.columns)


def test_server_and_health_routes(client: TestClient) -> None:
    assert client.get("/v2").json()["name"] == "berth"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}


def test_model_metadata(client: TestClient) -> None:
    metadata = client.get("/v2/models/iris").json()
    version = metadata["versions"][0]
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]
    assert client.get(f"/v2/models/iris/versions/{version}").json() == metadata


@pytest.mark.parametrize("inputs", [
    [{"name": "input-0", "shape": [3, 4], "datatype": "FP64", "data": [v for row in ROWS for v in row]}],
    [{"name": "input-0", "shape": [3, 4], "datatype": "FP32", "data": ROWS}],
    [{"name": n, "shape": [3, 1], "datatype": "FP64", "data": [r[i] for r in ROWS]} for i, n in enumerate(NAMES)],
], ids=["flat", "nested-fp32", "per-column"])
def test_infer(client: TestClient, iris_model: RandomForestClassifier, inputs: list) -> None:
    response = client.post("/v2/models/iris/infer", json={"id": "req-1", "inputs": inputs})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["id"] == "req-1" and payload["model_name"] == "iris"
    assert payload["outputs"] == [{"name": "predict", "shape": [3], "datatype": "INT64",
                                   "data": expected(iris_model, ROWS)}]


def test_requested_outputs(client: TestClient, iris_model: RandomForestClassifier) -> None:
    body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP64", "data": ROWS}],
            "outputs": [{"name": "predict_proba"}]}
    [output] = client.post("/v2/models/iris/infer", json=body).json()["outputs"]
    assert output["name"] == "predict_proba" and output["shape"] == [3, 3]
    np.testing.assert_allclose(np.reshape(output["data"], (3, 3)), iris_model.predict_proba(IRIS_X.iloc[[0, 60, 120]]))


@pytest.mark.parametrize(("body", "status", "fragment"), [
    ({"inputs": []}, 400, "non-empty list"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [1, 2, 3, 4]}]}, 400, "datatype"),
    ({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}, 422, "needs 8 values"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}, 422, "expected 4 values"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ["a", 2, 3, 4]}]}, 422, "not FP64"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}],
      "outputs": [{"name": "logits"}]}, 400, "unknown output"),
], ids=["empty", "datatype", "shape", "width", "type", "output"])
def test_errors_keep_the_protocol_shape(client: TestClient, body: dict, status: int, fragment: str) -> None:
    response = client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"error"} and isinstance(error["error"], str) and fragment in error["error"]


def test_unknown_model_and_version(client: TestClient) -> None:
    response = client.post("/v2/models/nope/infer", json={"inputs": []})
    assert response.status_code == 404 and "no model named 'nope'" in response.json()["error"]
    response = client.get("/v2/models/iris/versions/999")
    assert response.status_code == 404 and "has no version '999'" in response.json()["error"]
