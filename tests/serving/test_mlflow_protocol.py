"""POST /invocations and GET /ping, with the request shapes MLflow's clients send."""

from __future__ import annotations

import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.serving.conftest import IRIS_X, TestClient, expected

ROWS = IRIS_X.iloc[[0, 60, 120]].to_numpy().tolist()
NAMES = list(IRIS_X.columns)


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": NAMES, "data": ROWS}},
    {"dataframe_split": {"columns": NAMES[::-1], "data": [r[::-1] for r in ROWS]}},
    {"dataframe_split": {"columns": NAMES, "data": ROWS, "index": [0, 1, 2]}},
    {"dataframe_records": [dict(zip(NAMES, r, strict=True)) for r in ROWS]},
    {"instances": ROWS},
    {"inputs": ROWS},
    {"inputs": {n: [r[i] for r in ROWS] for i, n in enumerate(NAMES)}, "params": {}},
], ids=["split", "split-reordered", "split-index", "records", "instances", "inputs-rows", "inputs-columns"])
def test_json_shapes_answer_like_mlflow(client: TestClient, iris_model: RandomForestClassifier, body: dict) -> None:
    response = client.post("/invocations", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected(iris_model, ROWS)}


def test_csv_body(client: TestClient, iris_model: RandomForestClassifier) -> None:
    csv = IRIS_X.iloc[[0, 60, 120]].to_csv(index=False)
    response = client.post("/invocations", content=csv, headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected(iris_model, ROWS)}


def test_csv_with_infinity_and_bad_cells(client: TestClient) -> None:
    csv = ",".join(NAMES) + "\n5.1,3.5,1.4,inf\n5.1,oops,1.4,0.2\n"
    response = client.post("/invocations", content=csv, headers={"content-type": "text/csv; charset=utf-8"})
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert {"loc": ["body", "csv", 1, NAMES[1]], "msg": "expected a number, got string 'oops'"} in details


def test_errors(client: TestClient) -> None:
    response = client.post("/invocations", json={"dataframe_split": {"columns": NAMES, "data": [[1, 2]]}})
    assert response.status_code == 422
    response = client.post("/invocations", json={"instances": ROWS, "inputs": ROWS})
    assert response.status_code == 422
    response = client.post("/invocations", content=b"x", headers={"content-type": "application/xml"})
    assert response.status_code == 415


def test_ping(client: TestClient) -> None:
    assert client.get("/ping").status_code == 200
