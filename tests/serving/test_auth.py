"""Authentication edges: empty keys refused at startup, what stays open with keys, bundles without examples."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import berth
from berth.cli import app as cli
from berth.serving.settings import ServeSettings
from tests.serving.conftest import IRIS_X, ROW, make_client


@pytest.mark.parametrize("keys", [[""], ["  "], ["good", ""], ["has space"]])
def test_empty_or_blank_api_keys_are_refused(keys: list[str]) -> None:
    with pytest.raises(ValueError, match="API key"):
        ServeSettings(api_keys=keys)


@pytest.mark.parametrize("value", ["", " , ", ",", "  "])
def test_an_api_keys_variable_without_a_key_is_refused(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_API_KEYS", value)
    with pytest.raises(ValueError, match="holds no key"):
        ServeSettings()


def test_api_keys_from_the_environment_are_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_API_KEYS", " k1 , k2, ")
    assert ServeSettings().api_keys == ["k1", "k2"]


def test_serve_with_an_empty_api_key_exits_with_one_line(iris_bundle: Path) -> None:
    result = CliRunner().invoke(cli, ["serve", str(iris_bundle), "--api-key", ""])
    assert result.exit_code != 0
    assert "API key is empty" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("flag", ["protect_docs", "protect_metrics", "auth_all"])
def test_protecting_routes_needs_keys(flag: str) -> None:
    with pytest.raises(ValueError, match="need API keys"):
        ServeSettings(**{flag: True})


def test_an_empty_bearer_token_is_refused(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k1"]) as client:
        for header in ("Bearer ", "Bearer", "bearer  ", ""):
            response = client.post("/predict", json={"features": ROW}, headers={"authorization": header})
            assert response.status_code == 401, header


def test_with_keys_health_docs_and_metrics_stay_open_by_default(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k1"]) as client:
        for path in ("/health/live", "/health/ready", "/ping", "/v2/health/ready", "/metrics", "/openapi.json",
                     "/docs"):
            assert client.get(path).status_code == 200, path
        assert client.get("/dashboard/api/overview").status_code == 401
        assert client.post("/feedback", json={"request_id": "a", "label": 1}).status_code == 401


def test_protect_docs_and_metrics_close_them_but_not_the_probes(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k1"], protect_docs=True, protect_metrics=True) as client:
        for path in ("/metrics", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"authorization": "Bearer k1"}).status_code == 200, path
        for path in ("/health/live", "/health/ready", "/ping", "/v2/health/live", "/v2/health/ready"):
            assert client.get(path).status_code == 200, path
    with make_client([iris_bundle], api_keys=["k1"], protect_metrics=True) as client:
        assert client.get("/metrics").status_code == 401 and client.get("/openapi.json").status_code == 200


def test_openapi_documents_401_when_keys_are_set(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k1"]) as client:
        responses = client.get("/openapi.json").json()["paths"]["/invocations"]["post"]["responses"]
        assert {"401", "413", "422"} <= set(responses)


def test_a_bundle_saved_without_examples_publishes_no_rows(tmp_path: Path, iris_model: object) -> None:
    manifest = berth.save(iris_model, tmp_path / "private", sample=IRIS_X.head(20), name="private",
                          examples=False)
    assert manifest.signature.example == []
    assert "5.1" not in (tmp_path / "private" / "berth.json").read_text()
    with make_client([tmp_path / "private"]) as client:
        document = client.get("/openapi.json").text
        assert "5.1" not in document and "sepal length (cm)" in document
        assert client.post("/predict", json={"features": ROW}).status_code == 200
