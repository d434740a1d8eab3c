"""``/docs`` without internet, and an OpenAPI document whose every example is valid under its JSON Schema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import berth
from tests.serving.conftest import TestClient, make_client

DOCUMENT = "urn:berth:openapi"


@pytest.fixture(scope="module")
def shop_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A table with a string column and a nullable number column (a value is missing in the sample, after the
    rows the manifest keeps as its example: a missing value there is dropped from the manifest and fails warm-up)."""
    frame = pd.DataFrame({"color": ["red", "blue", "green", "red", "blue", "green"] * 5,
                          "size": [1.0, 2.5, 3.5, 4.0, np.nan, 3.0] * 5, "count": [1, 2, 3, 4, 5, 6] * 5})
    labels = (frame["count"] > 3).astype(int)
    prepare = ColumnTransformer([("color", OneHotEncoder(handle_unknown="ignore"), ["color"]),
                                 ("numbers", SimpleImputer(), ["size", "count"])])
    model = make_pipeline(prepare, LogisticRegression()).fit(frame, labels)
    path = tmp_path_factory.mktemp("bundles") / "shop"
    berth.save(model, path, sample=frame.head(6), name="shop")
    return path


@pytest.fixture(scope="module", params=["one model", "two models"])
def server(request: pytest.FixtureRequest, iris_bundle: Path, shop_bundle: Path) -> Iterator[TestClient]:
    sources = [iris_bundle] if request.param == "one model" else [iris_bundle, shop_bundle]
    with make_client(sources, trust=True) as client:  # our own bundle: OneHotEncoder keeps a numpy.dtype
        assert client.get("/health/ready").json()["ready"]
        yield client


def test_swagger_ui_loads_nothing_from_the_internet(server: TestClient) -> None:
    page = server.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text) + re.findall(r"url: *'([^']+)'", page.text)
    assert urls and not [u for u in urls if u.startswith(("http:", "https:", "//"))], urls
    assets = [u for u in urls if u.startswith("/docs/static/")]
    assert {"/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css"} <= set(assets)
    for asset in assets:
        response = server.get(asset)
        assert response.status_code == 200 and len(response.content) > 100, asset
    assert "/openapi.json" in urls


def test_docs_stay_open_with_api_keys(iris_bundle: Path) -> None:
    with make_client([iris_bundle], api_keys=["k"]) as client:
        assert client.get("/docs").status_code == 200
        assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200


def documented_bodies(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any], Any]]:
    """(path, media type, example name, schema, example value) of every request body example."""
    for path, operations in document["paths"].items():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type, body in content.items():
                for name, example in body.get("examples", {}).items():
                    yield path, media_type, name, body["schema"], example["value"]


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for ``schema``, its ``#/components/...`` references read from ``document``."""
    text = json.dumps(schema).replace('"$ref": "#/', f'"$ref": "{DOCUMENT}#/')
    registry = Registry().with_resource(DOCUMENT, Resource.from_contents(document, DRAFT202012))
    return Draft202012Validator(json.loads(text), registry=registry)


def test_every_example_is_valid_under_its_schema(server: TestClient) -> None:
    document = server.get("/openapi.json").json()
    bodies = list(documented_bodies(document))
    media = {(path, media_type) for path, media_type, *_ in bodies}
    assert ("/models/iris/invocations", "text/csv") in media
    assert ("/v2/models/iris/infer", "application/json") in media
    assert ("/v1/models/iris:predict", "application/json") in media
    for path, media_type, name, schema, value in bodies:
        Draft202012Validator.check_schema(schema)
        errors = [e.message for e in validator(document, schema).iter_errors(value)]
        assert not errors, f"{path} {media_type} example {name!r}: {errors}"
    assert '"oneOf"' not in json.dumps(document)


def test_a_value_matching_two_number_columns_is_valid(server: TestClient) -> None:
    """The issue's case: 6.3 is a valid value of a row of numbers (it matched every oneOf alternative)."""
    document = server.get("/openapi.json").json()
    schema = document["paths"]["/models/iris/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    check = validator(document, schema)
    assert check.is_valid({"features": [6.3, 3.3, 6.0, 2.5]})
    assert not check.is_valid({"features": [6.3, "x", 6.0, 2.5]})
    assert not check.is_valid({"features": [6.3, 3.3, 6.0]})


def test_every_example_really_predicts(server: TestClient) -> None:
    document = server.get("/openapi.json").json()
    for path, media_type, name, _, value in documented_bodies(document):
        if media_type == "application/json":
            response = server.post(path, json=value)
        else:
            response = server.post(path, content=value, headers={"content-type": media_type})
        assert response.status_code == 200, f"{path} {media_type} example {name!r}: {response.text}"


def test_nullable_and_string_columns(iris_bundle: Path, shop_bundle: Path) -> None:
    with make_client([iris_bundle, shop_bundle], trust=True) as client:
        document = client.get("/openapi.json").json()
    body = document["paths"]["/models/shop/predict"]["post"]["requestBody"]["content"]["application/json"]
    record = body["schema"]["properties"]["instances"]["items"]["anyOf"][1]["properties"]
    assert record["size"] == {"type": ["number", "null"]}
    assert record["color"] == {"type": "string"}
    check = validator(document, body["schema"])
    assert check.is_valid({"instances": [{"color": "red", "size": None, "count": 2}]})
    assert not check.is_valid({"instances": [{"color": "red", "size": 1.0, "count": None}]})
