"""KServe's V1 data plane: model status, ``:predict`` and KServe's error shape."""

from __future__ import annotations

import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.serving.conftest import IRIS_X, TestClient, expected

ROWS = IRIS_X.iloc[[0, 60, 120]].to_numpy().tolist()
NAMES = list(IRIS_X.columns)


def test_model_list_and_status(client: TestClient) -> None:
    assert client.get("/v1/models").json() == {"models": ["iris"]}
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_predict_rows(client: TestClient, iris_model: RandomForestClassifier, key: str) -> None:
    response = client.post("/v1/models/iris:predict", json={key: ROWS})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(iris_model, ROWS)}
    assert response.headers["x-berth-model"] == "iris"


def test_predict_records_with_parameters(client: TestClient, iris_model: RandomForestClassifier) -> None:
    records = [dict(zip(NAMES, row, strict=True)) for row in ROWS]
    response = client.post("/v1/models/iris:predict", json={"instances": records, "parameters": {}})
    assert response.json() == {"predictions": expected(iris_model, ROWS)}


@pytest.mark.parametrize(("path", "body", "status", "fragment"), [
    ("/v1/models/nope:predict", {"instances": ROWS}, 404, "no model named 'nope'; served: iris"),
    ("/v1/models/iris:predict", {"rows": ROWS}, 400, "expected exactly one of instances, inputs"),
    ("/v1/models/iris:predict", {"instances": []}, 400, "non-empty list"),
    ("/v1/models/iris:predict", {"instances": ROWS, "inputs": ROWS}, 400, "got instances, inputs"),
    ("/v1/models/iris:predict", {"instances": [[1.0, 2.0]]}, 422, "expected 4 values"),
    ("/v1/models/iris:predict", {"instances": [["a", 1, 2, 3]]}, 422, "sepal length"),
])
def test_errors_in_kserve_shape(client: TestClient, path: str, body: dict, status: int, fragment: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert list(error) == ["error"] and fragment in error["error"]


def test_unknown_model_status_is_404(client: TestClient) -> None:
    response = client.get("/v1/models/nope")
    assert response.status_code == 404 and "served: iris" in response.json()["error"]


def test_body_limit_answers_in_kserve_shape(iris_bundle: object) -> None:
    from tests.serving.conftest import make_client

    with make_client([iris_bundle], max_body_mb=0.001) as small:
        response = small.post("/v1/models/iris:predict", json={"instances": ROWS * 20})
    assert response.status_code == 413 and isinstance(response.json()["error"], str)
