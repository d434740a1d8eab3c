"""Health probes, Prometheus metrics, API keys, typed OpenAPI docs, several models on one server."""

from __future__ import annotations

from pathlib import Path

from sklearn.ensemble import RandomForestClassifier

from tests.serving.conftest import IRIS_X, ROW, TestClient, expected, make_client


def test_ready_lists_models_and_a_broken_source_keeps_it_unready(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle]) as client:
        ready = client.get("/health/ready").json()
        assert ready["ready"] is True and set(ready["models"]) == {"iris"}
    with make_client([iris_bundle, tmp_path / "missing"]) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503
        [problem] = response.json()["problems"].values()
        assert "does not exist" in problem
        assert client.get("/health/live").status_code == 200
        assert client.get("/ping").status_code == 503
        assert client.post("/models/iris/predict", json={"features": ROW}).status_code == 200


def test_metrics_count_requests_batches_and_loads(client: TestClient) -> None:
    client.post("/predict", json={"features": ROW})
    client.post("/predict", json={"instances": [[1, 2]]})
    text = client.get("/metrics").text
    version = client.get("/health/ready").json()["models"]["iris"]["version"]
    assert f'berth_requests_total{{model="iris",route="/predict",status="200",version="{version}"}} 1.0' in text
    assert f'berth_requests_total{{model="iris",route="/predict",status="422",version="{version}"}} 1.0' in text
    assert 'berth_request_duration_seconds_count{model="iris",route="/predict"} 2.0' in text
    assert 'berth_batch_size_rows_count{model="iris"}' in text
    assert "berth_queue_depth" in text and "berth_in_flight_requests" in text
    assert f'berth_model_load_seconds{{model="iris",version="{version}"}}' in text


def test_api_keys_guard_prediction_routes_only(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k1", "k2"]) as client:
        response = client.post("/predict", json={"features": ROW})
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"
        assert client.post("/predict", json={"features": ROW}, headers={"authorization": "Bearer nope"}
                           ).status_code == 401
        assert client.post("/predict", json={"features": ROW}, headers={"authorization": "Basic k1"}
                           ).status_code == 401
        for key in ("k1", "k2"):
            assert client.post("/predict", json={"features": ROW}, headers={"authorization": f"Bearer {key}"}
                               ).status_code == 200
        assert client.post("/v2/models/iris/infer", json={}).json() == {
            "error": "missing or invalid API key: send Authorization: Bearer KEY"}
        for open_route in ("/health/live", "/health/ready", "/metrics", "/ping", "/v2/health/ready"):
            assert client.get(open_route).status_code == 200, open_route
    with make_client([iris_bundle], api_keys=["k1"], auth_all=True) as client:
        assert client.get("/metrics").status_code == 401


def test_openapi_types_the_body_from_the_signature(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]["properties"]["instances"]["items"]["anyOf"][1]
    assert list(record["properties"]) == list(IRIS_X.columns)
    assert record["properties"]["petal width (cm)"] == {"type": "number"}
    example = body["examples"]["instances"]["value"]
    assert client.post("/predict", json=example).status_code == 200  # the docs' example really predicts
    assert "/models/iris/predict" in schema["paths"]
    assert "dataframe_split" in schema["paths"]["/invocations"]["post"]["requestBody"]["content"][
        "application/json"]["examples"]
    assert "swagger" in client.get("/docs").text.lower()


def test_several_models(iris_bundle: Path, tmp_path: Path, iris_model: RandomForestClassifier) -> None:
    import berth

    berth.save(iris_model, tmp_path / "other", sample=IRIS_X.head(), name="other")
    with make_client([iris_bundle, tmp_path / "other"]) as client:
        for name in ("iris", "other"):
            response = client.post(f"/models/{name}/predict", json={"features": ROW})
            assert response.json()["model"] == name
            assert response.json()["predictions"] == expected(iris_model, [ROW])
        response = client.post("/predict", json={"features": ROW})
        assert response.status_code == 404 and "iris, other" in response.json()["error"]["message"]
        assert client.post("/models/nope/predict", json={"features": ROW}).status_code == 404


def test_a_tutorial_joblib_file_is_served_with_trust(tmp_path: Path, iris_model: RandomForestClassifier) -> None:
    import joblib

    joblib.dump(iris_model, tmp_path / "iris_model.joblib")
    with make_client([str(tmp_path / "iris_model.joblib")]) as client:
        response = client.get("/health/ready")
        assert response.status_code == 503 and "runs code" in str(response.json()["problems"])
    with make_client([str(tmp_path / "iris_model.joblib")], trust=True) as client:
        response = client.post("/predict", json={"features": ROW})
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == expected(iris_model, [ROW])
        assert response.json()["model"] == "iris_model"
