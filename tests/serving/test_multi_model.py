"""Several models in one server: every protocol's per-model route, served names (NAME=URI), unknown models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression

import berth
from berth.errors import BerthError
from berth.serving.dataplane import ModelSource
from berth.serving.naming import split_named
from tests.serving.conftest import IRIS_X, TestClient, expected, make_client

ROWS = IRIS_X.iloc[[0, 60, 120]].to_numpy().tolist()
DIABETES_X, DIABETES_Y = load_diabetes(return_X_y=True, as_frame=True)


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LinearRegression]:
    model = LinearRegression().fit(DIABETES_X, DIABETES_Y)
    path = tmp_path_factory.mktemp("bundles") / "diabetes"
    berth.save(model, path, sample=DIABETES_X.head(20), name="diabetes")
    return path, model


@pytest.fixture(scope="module")
def two(iris_bundle: Path, diabetes: tuple[Path, LinearRegression]) -> Iterator[TestClient]:
    with make_client([f"flowers={iris_bundle}", str(diabetes[0])]) as client:
        yield client


def test_names_from_the_command_line_and_the_manifest(two: TestClient) -> None:
    assert sorted(two.get("/health/ready").json()["models"]) == ["diabetes", "flowers"]
    assert two.get("/v1/models").json() == {"models": ["diabetes", "flowers"]}


def test_every_protocol_reaches_each_model(two: TestClient, iris_model: object,
                                          diabetes: tuple[Path, LinearRegression]) -> None:
    labels = expected(iris_model, ROWS)  # type: ignore[arg-type]
    rows = DIABETES_X.head(2)
    values = diabetes[1].predict(rows).tolist()
    assert two.post("/models/flowers/predict", json={"instances": ROWS}).json()["predictions"] == labels
    split = {"dataframe_split": {"columns": list(IRIS_X.columns), "data": ROWS}}
    assert two.post("/models/flowers/invocations", json=split).json() == {"predictions": labels}
    csv = "\n".join(",".join(map(str, row)) for row in rows.to_numpy().tolist())
    answer = two.post("/models/diabetes/invocations", content=csv, headers={"content-type": "text/csv"})
    assert answer.json()["predictions"] == pytest.approx(values)
    assert answer.headers["x-berth-model"] == "diabetes"
    assert two.post("/v1/models/flowers:predict", json={"instances": ROWS}).json() == {"predictions": labels}
    infer = {"inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP64", "data": rows.to_numpy().tolist()}]}
    output = two.post("/v2/models/diabetes/infer", json=infer).json()["outputs"][0]
    assert output["data"] == pytest.approx(values)
    assert two.post("/score", json={"instances": ROWS}).status_code == 404  # which model? see below


@pytest.mark.parametrize(("method", "path", "body"), [
    ("post", "/models/nope/predict", {"instances": ROWS}),
    ("post", "/models/nope/invocations", {"instances": ROWS}),
    ("post", "/v2/models/nope/infer", {"inputs": []}),
    ("get", "/v2/models/nope", None),
    ("post", "/v1/models/nope:predict", {"instances": ROWS}),
    ("get", "/v1/models/nope", None),
])
def test_an_unknown_model_is_404_listing_the_names(two: TestClient, method: str, path: str, body: object) -> None:
    response = two.request(method.upper(), path, json=body)
    assert response.status_code == 404
    text = response.text
    assert "no model named 'nope'" in text and "served: diabetes, flowers" in text


@pytest.mark.parametrize("path", ["/predict", "/invocations"])
def test_routes_without_a_name_say_which_to_use(two: TestClient, path: str) -> None:
    response = two.post(path, json={"instances": ROWS})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert "2 models" in message and "diabetes, flowers" in message


def test_the_same_bundle_twice_under_two_names(iris_bundle: Path, iris_model: object) -> None:
    with make_client([f"a={iris_bundle}", f"b={iris_bundle}"]) as client:
        for name in ("a", "b"):
            response = client.post(f"/models/{name}/invocations", json={"instances": ROWS})
            assert response.json() == {"predictions": expected(iris_model, ROWS)}  # type: ignore[arg-type]
            assert response.headers["x-berth-model"] == name


def test_two_models_of_one_name_are_a_problem_that_names_the_fix(iris_bundle: Path) -> None:
    with make_client([iris_bundle, iris_bundle]) as client:
        ready = client.get("/health/ready").json()
    assert ready["ready"] is False
    [problem] = ready["problems"].values()
    assert "two models are named 'iris'" in problem and "NAME=URI" in problem


def test_split_named(tmp_path: Path) -> None:
    assert split_named("a=models:/iris/1") == ("a", "models:/iris/1")
    assert split_named("iris-2.v1=./bundle") == ("iris-2.v1", "./bundle")
    assert split_named("models:/iris/1") == (None, "models:/iris/1")
    assert split_named("./runs/dt=2026/model") == (None, "./runs/dt=2026/model")
    assert split_named("s3://bucket/k=v/model") == (None, "s3://bucket/k=v/model")
    existing = tmp_path / "x=y"
    existing.mkdir()
    assert split_named(str(existing)) == (None, str(existing))
    assert ModelSource.of("b=./other").name == "b"
    for bad in ("-a=./bundle", "a b=./bundle", "a="):
        with pytest.raises(BerthError, match="invalid model name|gives no URI"):
            split_named(bad)


def test_berth_serve_checks_served_names_before_starting(iris_bundle: Path) -> None:
    from berth.errors import UsageError
    from berth.serving.launch import plan

    checked = plan([f"a={iris_bundle}", f"b={iris_bundle}"])
    assert [ModelSource.of(s).name for s in checked.sources] == ["a", "b"]
    with pytest.raises(UsageError, match="two models are named a"):
        plan([f"a={iris_bundle}", f"a={iris_bundle}"])
    with pytest.raises(UsageError, match="invalid model name"):
        plan([f"no good={iris_bundle}"])
    with pytest.raises(UsageError, match="nothing to serve at ./missing"):
        plan(["a=./missing"])


def test_grpc_is_refused_with_the_ray_backend(iris_bundle: Path) -> None:
    from berth.errors import UsageError
    from berth.serving.launch import RayRequest, plan

    with pytest.raises(UsageError, match="--grpc-port .* --backend ray"):
        plan([str(iris_bundle)], {"grpc_port": 9001}, ray=RayRequest(backend="ray"))


def test_named_registry_uris_resolve_in_the_default_registry(
        tmp_path: Path, iris_bundle: Path, monkeypatch: pytest.MonkeyPatch, iris_model: object) -> None:
    """``a=models:/iris/1``: the name is split off before the server decides it needs a registry."""
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    berth.Registry(url, tmp_path / "artifacts").register(iris_bundle, "iris")
    monkeypatch.setenv("BERTH_ARTIFACTS_URL", str(tmp_path / "artifacts"))
    with make_client(["a=models:/iris/1", "b=models:/iris/1"], registry_url=url) as client:
        assert client.get("/health/ready").json()["ready"]
        for name in ("a", "b"):
            response = client.post(f"/v1/models/{name}:predict", json={"instances": ROWS})
            assert response.json() == {"predictions": expected(iris_model, ROWS)}  # type: ignore[arg-type]
            assert response.headers["x-berth-model-version"] == "1"
