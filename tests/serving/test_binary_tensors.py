"""The Open Inference Protocol's binary tensor data extension over HTTP, and the raw layout it shares with gRPC."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth
from berth.errors import RequestError
from berth.serving.protocols import binary
from tests.serving.conftest import IRIS_X, TestClient, expected, make_client

ROWS = IRIS_X.iloc[[0, 60, 120]]
HEADER = "Inference-Header-Content-Length"


def binary_body(header: dict, *raws: bytes) -> tuple[bytes, dict[str, str]]:
    head = json.dumps(header).encode()
    return head + b"".join(raws), {HEADER: str(len(head)), "content-type": "application/octet-stream"}


def split_response(response: object) -> tuple[dict, bytes]:
    length = int(response.headers[HEADER])  # type: ignore[attr-defined]
    content = response.content  # type: ignore[attr-defined]
    return json.loads(content[:length]), content[length:]


def tensor(name: str, array: np.ndarray, datatype: str) -> tuple[dict, bytes]:
    raw = binary.array_to_raw(array, datatype)
    return {"name": name, "shape": list(array.shape), "datatype": datatype,
            "parameters": {"binary_data_size": len(raw)}}, raw


def test_server_metadata_lists_the_extension(client: TestClient) -> None:
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


@pytest.mark.parametrize(("dtype", "datatype"), [(np.float32, "FP32"), (np.float64, "FP64")])
def test_binary_input_binary_outputs(client: TestClient, iris_model: RandomForestClassifier, dtype: type,
                                     datatype: str) -> None:
    spec, raw = tensor("input-0", ROWS.to_numpy().astype(dtype), datatype)
    body, headers = binary_body({"inputs": [spec], "parameters": {"binary_data_output": True},
                                 "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}, raw)
    response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["x-berth-model"] == "iris"
    header, tail = split_response(response)
    predict, proba = header["outputs"]
    assert predict == {"name": "predict", "shape": [3], "datatype": "INT64", "parameters": {"binary_data_size": 24}}
    assert proba["parameters"] == {"binary_data_size": 72} and proba["shape"] == [3, 3]
    assert np.frombuffer(tail[:24], "<i8").tolist() == expected(iris_model, ROWS.to_numpy().tolist())
    np.testing.assert_allclose(np.frombuffer(tail[24:], "<f8").reshape(3, 3), iris_model.predict_proba(ROWS))


def test_one_binary_tensor_per_column_and_json_outputs(client: TestClient, iris_model: RandomForestClassifier) -> None:
    specs, raws = zip(*(tensor(c, ROWS[c].to_numpy(), "FP64") for c in ROWS.columns), strict=True)
    body, headers = binary_body({"inputs": list(specs)}, *raws)
    response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"  # nothing asked binary: plain JSON
    assert response.json()["outputs"][0]["data"] == expected(iris_model, ROWS.to_numpy().tolist())


def test_per_output_flag_wins_over_the_request_default(client: TestClient) -> None:
    spec, raw = tensor("input-0", ROWS.to_numpy(), "FP64")
    body, headers = binary_body({"inputs": [spec], "parameters": {"binary_data_output": True},
                                 "outputs": [{"name": "predict", "parameters": {"binary_data": False}},
                                             {"name": "predict_proba"}]}, raw)
    header, tail = split_response(client.post("/v2/models/iris/infer", content=body, headers=headers))
    assert "data" in header["outputs"][0] and header["outputs"][1]["parameters"]["binary_data_size"] == len(tail)


def test_json_and_binary_inputs_mix(client: TestClient, iris_model: RandomForestClassifier) -> None:
    columns = list(ROWS.columns)
    first, raw = tensor(columns[0], ROWS[columns[0]].to_numpy(), "FP64")
    rest = [{"name": c, "shape": [3], "datatype": "FP64", "data": ROWS[c].tolist()} for c in columns[1:]]
    body, headers = binary_body({"inputs": [*rest, first]}, raw)
    response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.json()["outputs"][0]["data"] == expected(iris_model, ROWS.to_numpy().tolist())


def test_bytes_round_trip_length_prefixed() -> None:
    array = np.array(["setosa", "", "virginica ✓"], dtype=object)
    raw = binary.array_to_raw(array, "BYTES")
    assert raw[:4] == struct.pack("<I", 6) and raw[4:10] == b"setosa" and raw[10:14] == b"\0\0\0\0"
    back = binary.raw_to_array(raw, "x", "BYTES", [3], ["inputs", 0])
    assert back.tolist() == array.tolist()


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"\x06\x00\x00", "truncated 4-byte length prefix"),
    (b"\x09\x00\x00\x00abc", "says 9 bytes, only 3 are left"),
    (b"\x01\x00\x00\x00a", "needs 2 BYTES elements, the raw contents hold 1"),
])
def test_malformed_bytes_are_refused(raw: bytes, fragment: str) -> None:
    with pytest.raises(RequestError, match=fragment):
        binary.raw_to_array(raw, "x", "BYTES", [2], ["inputs", 0])


def test_bytes_outputs_of_a_string_classifier(tmp_path: Path) -> None:
    labels = np.array(["setosa", "versicolor", "virginica"])[load_iris(return_X_y=True)[1]]
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(IRIS_X, labels)
    berth.save(model, tmp_path / "species", sample=IRIS_X.head(20), name="species")
    with make_client([tmp_path / "species"]) as client:
        spec, raw = tensor("input-0", ROWS.to_numpy(), "FP64")
        body, headers = binary_body({"inputs": [spec], "parameters": {"binary_data_output": True}}, raw)
        header, tail = split_response(client.post("/v2/models/species/infer", content=body, headers=headers))
    assert header["outputs"][0]["datatype"] == "BYTES"
    assert binary.deserialize_bytes(tail, "predict", []) == [s.encode() for s in model.predict(ROWS)]


def post_raw(client: TestClient, body: bytes, header_length: str) -> object:
    return client.post("/v2/models/iris/infer", content=body,
                       headers={HEADER: header_length, "content-type": "application/octet-stream"})


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda head, raw: (head + raw, "abc"), "must be a non-negative integer, got 'abc'"),
    (lambda head, raw: (head + raw, "-5"), "must be a non-negative integer"),
    (lambda head, raw: (head + raw, "0"), "is 0"),
    (lambda head, raw: (head + raw, str(len(head + raw) + 1)), "but the body has only"),
    (lambda head, raw: (head + raw, str(len(head) - 3)), "not valid JSON"),
    (lambda head, raw: (head + raw[:-5], str(len(head))), "binary_data_size is 96 but only 91 bytes"),
    (lambda head, raw: (head + raw + b"xx", str(len(head))), "2 bytes of binary data follow"),
], ids=["not-a-number", "negative", "zero", "past-the-end", "cuts-the-json", "truncated", "trailing"])
def test_bad_lengths_are_400_in_the_v2_error_shape(client: TestClient, make: object, fragment: str) -> None:
    spec, raw = tensor("input-0", ROWS.to_numpy(), "FP64")
    head = json.dumps({"inputs": [spec]}).encode()
    body, header_length = make(head, raw)  # type: ignore[operator]
    response = post_raw(client, body, header_length)
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    error = response.json()  # type: ignore[attr-defined]
    assert list(error) == ["error"] and isinstance(error["error"], str) and fragment in error["error"]


@pytest.mark.parametrize(("shape", "datatype", "size", "fragment"), [
    ([3, 4], "FP64", 90, "needs 96 bytes, the raw contents hold 90"),
    ([3, 4], "FP32", 96, "needs 48 bytes, the raw contents hold 96"),
    ([4, 4], "FP64", 96, "needs 128 bytes"),
    ([3, 4], "FP64", -1, "binary_data_size must be a non-negative integer"),
])
def test_size_must_match_shape_and_datatype(client: TestClient, shape: list, datatype: str, size: int,
                                            fragment: str) -> None:
    raw = ROWS.to_numpy().tobytes()[:max(size, 0)]
    spec = {"name": "input-0", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": size}}
    body, headers = binary_body({"inputs": [spec]}, raw)
    response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.status_code == 400 and fragment in response.json()["error"], response.text


def test_data_and_binary_size_together_are_refused(client: TestClient) -> None:
    spec, raw = tensor("input-0", ROWS.to_numpy(), "FP64")
    body, headers = binary_body({"inputs": [{**spec, "data": [1.0] * 12}]}, raw)
    response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.status_code == 400 and "not both" in response.json()["error"]


def test_binary_bodies_are_bounded_by_the_body_limit(iris_bundle: object) -> None:
    rows = np.tile(ROWS.to_numpy(), (50_000, 1))  # 150,000 rows, 4.8 MB of FP64
    spec, raw = tensor("input-0", rows, "FP64")
    body, headers = binary_body({"inputs": [spec]}, raw)
    with make_client([iris_bundle], max_body_mb=1) as client:
        response = client.post("/v2/models/iris/infer", content=body, headers=headers)
    assert response.status_code == 413 and "larger than" in response.json()["error"]
