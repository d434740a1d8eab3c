"""Cloud platform contracts in process: settings from the platforms' variables, and each platform's routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.errors import UsageError
from berth.serving.platform_settings import resolve, split_start_argument
from berth.serving.settings import ServeSettings
from tests.serving.conftest import IRIS_X, make_client

ROWS = IRIS_X.iloc[[0, 60, 120]]
VERTEX_ENV = {"AIP_HTTP_PORT": "8081", "AIP_HEALTH_ROUTE": "/v1/endpoints/7/deployedModels/9",
              "AIP_PREDICT_ROUTE": "/v1/endpoints/7/deployedModels/9:predict"}


# ------------------------------------------------------------------------------------------- settings


def test_start_argument_is_taken_from_the_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_start_argument(["/opt/ml/model", "serve"]) == (["/opt/ml/model"], True)
    assert split_start_argument(["serve"]) == (["/opt/ml/model"], True)
    assert split_start_argument(["out/iris"]) == (["out/iris"], False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "serve").mkdir()  # a bundle really named "serve" stays a URI
    assert split_start_argument(["serve"]) == (["serve"], False)


def test_sagemaker_port() -> None:
    settings = ServeSettings(port=8000)
    assert resolve(settings, {}, started=True).port == 8080
    assert resolve(settings, {}, started=True).platform == "sagemaker"
    assert resolve(settings, {"SAGEMAKER_BIND_TO_PORT": "9100"}, started=True).port == 9100
    assert resolve(settings, {"SAGEMAKER_BIND_TO_PORT": "9100"}).port == 9100  # detected by the variable alone
    assert resolve(settings, {}, started=True, given={"port"}).port == 8000  # the command line wins
    assert resolve(settings, {}).port == 8000 and resolve(settings, {}).platform == ""
    explicit = ServeSettings(port=8000, platform="sagemaker")
    assert resolve(explicit, {}).port == 8000  # no start argument, no variable: BERTH_PORT stands
    with pytest.raises(UsageError, match="SAGEMAKER_BIND_TO_PORT"):
        resolve(settings, {"SAGEMAKER_BIND_TO_PORT": "http"}, started=True)


def test_vertex_variables() -> None:
    settings = resolve(ServeSettings(port=8000), VERTEX_ENV)
    assert (settings.platform, settings.port) == ("vertex", 8081)
    assert settings.predict_route == VERTEX_ENV["AIP_PREDICT_ROUTE"]
    assert settings.health_route == VERTEX_ENV["AIP_HEALTH_ROUTE"]
    assert resolve(ServeSettings(), {"AIP_HTTP_PORT": "8080"}).predict_route == "/vertex/predict"
    assert resolve(ServeSettings(platform="vertex"), {}).port == 8080
    assert resolve(ServeSettings(platform="none"), VERTEX_ENV).predict_route == ""
    assert resolve(ServeSettings(platform="none"), VERTEX_ENV).port == 8000
    with pytest.raises(UsageError, match="AIP_HTTP_PORT"):
        resolve(ServeSettings(), {"AIP_HTTP_PORT": "99999"})


def test_platform_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_PLATFORM", "vertex")
    monkeypatch.setenv("BERTH_PREDICT_ROUTE", "/custom:predict")
    settings = resolve(ServeSettings(), {})
    assert (settings.platform, settings.predict_route, settings.health_route) == (
        "vertex", "/custom:predict", "/vertex/health")
    monkeypatch.setenv("BERTH_PLATFORM", "heroku")
    with pytest.raises(ValueError, match="platform"):
        ServeSettings()


# ------------------------------------------------------------------------------------------- Azure: /score


def test_score_takes_azure_input_data(iris_bundle: Path, iris_model) -> None:
    expected = iris_model.predict(ROWS).tolist()
    split = {"columns": list(ROWS.columns), "index": [0, 1, 2], "data": ROWS.values.tolist()}
    with make_client([iris_bundle]) as client:
        for body in ({"input_data": split}, {"input_data": ROWS.values.tolist()},
                     {"input_data": ROWS.to_dict(orient="records")},
                     {"dataframe_split": {"columns": list(ROWS.columns), "data": ROWS.values.tolist()}}):
            response = client.post("/score", json=body)
            assert response.status_code == 200, (body, response.text)
            assert response.json() == {"predictions": expected}
            assert response.headers["x-berth-model"] == "iris"
        response = client.post("/score", content=ROWS.to_csv(index=False), headers={"content-type": "text/csv"})
        assert response.json() == {"predictions": expected}
        metrics = client.get("/metrics").text
    assert 'route="/score"' in metrics


def test_score_errors_name_the_place(iris_bundle: Path) -> None:
    bad = ROWS.values.tolist()
    bad[1][2] = "wide"
    with make_client([iris_bundle]) as client:
        response = client.post("/score", json={"input_data": bad})
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["loc"][:3] == ["body", "input_data", 1]
        response = client.post("/score", json={"input_data": bad[:1], "extra": 1})
        assert response.status_code == 422 and "extra" in response.json()["error"]["message"]
        assert client.post("/score", content=b"{", headers={"content-type": "application/json"}).status_code == 400
        assert client.post("/score", json={"nothing": []}).status_code == 422


# ------------------------------------------------------------------------------------------- Vertex AI


def test_vertex_routes(iris_bundle: Path, iris_model) -> None:
    settings = resolve(ServeSettings(), VERTEX_ENV)
    expected = iris_model.predict(ROWS).tolist()
    with make_client([iris_bundle], **settings.model_dump()) as client:
        assert client.get(VERTEX_ENV["AIP_HEALTH_ROUTE"]).status_code == 200
        for instances in (ROWS.values.tolist(), ROWS.to_dict(orient="records")):
            response = client.post(VERTEX_ENV["AIP_PREDICT_ROUTE"],
                                   json={"instances": instances, "parameters": {"any": "thing"}})
            assert response.status_code == 200, response.text
            assert response.json() == {"predictions": expected}
        response = client.post(VERTEX_ENV["AIP_PREDICT_ROUTE"], json={"instances": ROWS.values.tolist()})
        assert response.json() == {"predictions": expected}
        response = client.post(VERTEX_ENV["AIP_PREDICT_ROUTE"], json={"inputs": []})
        assert response.status_code == 422
        assert [d["loc"] for d in response.json()["error"]["details"]] == [["body", "instances"], ["body", "inputs"]]
        bad = ROWS.values.tolist()
        bad[2][0] = None
        response = client.post(VERTEX_ENV["AIP_PREDICT_ROUTE"], json={"instances": bad})
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["loc"][:3] == ["body", "instances", 2]
        assert client.post(VERTEX_ENV["AIP_PREDICT_ROUTE"], json={"instances": {}}).status_code == 422


def test_vertex_health_waits_for_the_models(iris_bundle: Path) -> None:
    from fastapi.testclient import TestClient

    from berth.serving.app import create_app

    settings = resolve(ServeSettings(), VERTEX_ENV)
    app = create_app([iris_bundle], settings, load_in_background=True)
    app.state.plane.loading_done = False  # as it is while the models load
    client = TestClient(app)
    assert client.get(VERTEX_ENV["AIP_HEALTH_ROUTE"]).status_code == 503


def test_no_vertex_routes_unless_configured(iris_bundle: Path) -> None:
    with make_client([iris_bundle]) as client:
        assert client.post("/vertex/predict", json={"instances": []}).status_code == 404


@pytest.mark.parametrize("route", ["/predict", "/health/ready", "/v2/models/iris/infer", "/score", "relative"])
def test_platform_routes_cannot_shadow_berth_routes(iris_bundle: Path, route: str) -> None:
    with pytest.raises(UsageError, match="route"):
        make_client([iris_bundle], predict_route=route)


# ------------------------------------------------------------------------------------------- SageMaker, KServe


def test_sagemaker_and_kserve_routes_are_served(iris_bundle: Path, iris_model) -> None:
    expected = iris_model.predict(ROWS).tolist()
    with make_client([iris_bundle]) as client:
        assert client.get("/ping").status_code == 200
        response = client.post("/invocations", json={"instances": ROWS.values.tolist()})
        assert response.json() == {"predictions": expected}
        assert client.get("/v2/health/ready").status_code == 200
        body = {"inputs": [{"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64",
                            "data": ROWS.values.flatten().tolist()}]}
        response = client.post("/v2/models/iris/infer", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == expected
