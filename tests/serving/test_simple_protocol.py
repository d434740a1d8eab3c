"""POST /predict: every accepted shape, and each kind of bad input answered with a precise 4xx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from tests.serving.conftest import IRIS_X, ROW, TestClient, expected, make_client

NAMES = list(IRIS_X.columns)
RECORD = dict(zip(NAMES, ROW, strict=True))


@pytest.mark.parametrize("body", [
    {"features": ROW},
    {"features": RECORD},
    {"instances": [ROW]},
    {"instances": [RECORD]},
    {"inputs": {name: [value] for name, value in RECORD.items()}},
], ids=["features-list", "features-record", "instances-rows", "instances-records", "inputs-columns"])
def test_every_body_shape_predicts(client: TestClient, iris_model: RandomForestClassifier, body: dict) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["predictions"] == expected(iris_model, [ROW])
    assert payload["model"] == "iris"
    assert payload["version"] == response.headers["x-berth-model-version"]
    assert response.headers["x-berth-model"] == "iris"


def test_many_rows_and_probabilities(client: TestClient, iris_model: RandomForestClassifier) -> None:
    rows = IRIS_X.iloc[::10].to_numpy().tolist()
    payload = client.post("/predict", json={"instances": rows, "probabilities": True}).json()
    assert payload["predictions"] == expected(iris_model, rows)
    assert payload["classes"] == [0, 1, 2]
    np.testing.assert_allclose(payload["probabilities"], iris_model.predict_proba(IRIS_X.iloc[::10]))


def error_of(response: object, status: int) -> dict:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert set(error) == {"code", "message", "details"}
    return error


@pytest.mark.parametrize(("body", "status", "loc", "msg"), [
    ({"instances": [[5.1, 3.5, 1.4]]}, 422, ["body", "instances", 0], "expected 4 values, got 3"),
    ({"instances": [ROW, [5.1, "wide", 1.4, 0.2]]}, 422, ["body", "instances", 1, NAMES[1]],
     "expected a number, got string 'wide'"),
    ({"instances": [{k: v for k, v in RECORD.items() if k != NAMES[2]}]}, 422, ["body", "instances", 0, NAMES[2]],
     "field is required"),
    ({"instances": [{**RECORD, "colour": 1}]}, 422, ["body", "instances", 0, "colour"], "unknown field"),
    ({"instances": [[None, 3.5, 1.4, 0.2]]}, 422, ["body", "instances", 0, NAMES[0]],
     "missing value (null/NaN) is not allowed"),
    ({"instances": []}, 422, ["body", "instances"], "empty input: send at least one row"),
    ({"rows": [ROW]}, 422, ["body"], "expected exactly one of features, instances, inputs; got none"),
    ({"features": ROW, "probabilities": "yes"}, 422, ["body", "probabilities"], "expected true or false"),
    ([ROW], 400, ["body"], "expected an object"),
], ids=["row-width", "wrong-type", "missing-field", "unknown-field", "null", "empty", "no-key", "bad-flag",
        "not-object"])
def test_bad_input_names_row_and_field(client: TestClient, iris_model: RandomForestClassifier, body: object,
                                       status: int, loc: list, msg: str) -> None:
    error = error_of(client.post("/predict", json=body), status)
    assert {"loc": loc, "msg": msg} in error["details"]
    assert client.post("/predict", json={"features": ROW}).status_code == 200  # the next good request is fine


def test_malformed_json_and_wrong_content_type(client: TestClient) -> None:
    error = error_of(client.post("/predict", content=b'{"features": [1,', headers={"content-type":
                                                                                    "application/json"}), 400)
    assert error["code"] == "bad_request" and "not valid JSON" in error["message"]
    error = error_of(client.post("/predict", content=b"5.1,3.5", headers={"content-type": "text/plain"}), 415)
    assert error["details"] == [{"loc": ["header", "content-type"], "msg": "unsupported: text/plain"}]


def test_body_over_the_limit_is_413(iris_bundle: Path) -> None:
    with make_client([iris_bundle], max_body_mb=0.001) as small:
        body = {"instances": [ROW] * 200}
        error = error_of(small.post("/predict", json=body), 413)
        assert error["code"] == "payload_too_large"
        assert small.post("/predict", json={"features": ROW}).status_code == 200


def test_model_failure_is_a_500_with_an_error_id_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import berth
    from tests.serving.models import FailsOnNegative

    berth.save(FailsOnNegative(), tmp_path / "fragile", sample=[[1.0, 2.0]])
    with make_client([berth.load(tmp_path / "fragile", trust=True)]) as fragile:
        response = fragile.post("/predict", json={"instances": [[-1.0, 2.0]]})
        error = error_of(response, 500)
        error_id = error["message"].split()[2].rstrip(":")
        assert error["code"] == "prediction_failed"
        assert any(error_id in record.getMessage() for record in caplog.records)
        assert fragile.post("/predict", json={"instances": [[3.0, 2.0]]}).json()["predictions"] == [6.0]


def test_timeout_is_504(tmp_path: Path) -> None:
    import berth
    from tests.serving.models import SlowModel

    berth.save(SlowModel(0.5), tmp_path / "slow", sample=[[1.0]])
    with make_client([berth.load(tmp_path / "slow", trust=True)], timeout_s=0.05) as slow:
        error = error_of(slow.post("/predict", json={"features": [1.0]}), 504)
        assert error["code"] == "timeout"
