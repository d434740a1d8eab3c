"""The Open Inference Protocol with the clients Triton and KServe users have, at their defaults, on a real server.

``tritonclient.http`` sends and asks for tensors in the binary tensor data extension unless told otherwise;
``tritonclient.grpc`` sends ``raw_input_contents`` and reads ``raw_output_contents``. Both run against
``berth serve --grpc-port`` in a subprocess, as users run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from berth.monitoring.store import Store
from support.ports import free_port
from support.server_process import ServerProcess
from tests.serving.conftest import IRIS_X

pytestmark = pytest.mark.slow
http = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = IRIS_X.iloc[[0, 60, 120, 149]]


@pytest.fixture(scope="module")
def server(iris_bundle: Path) -> Iterator[ServerProcess]:
    grpc_port = free_port()
    process = ServerProcess(str(iris_bundle), "--workers", "1", "--grpc-port", str(grpc_port))
    process.grpc_url = f"127.0.0.1:{grpc_port}"  # type: ignore[attr-defined]
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def listening_sockets(port: int) -> int:
    """Listening TCP sockets on ``port``, IPv4 and IPv6 (gRPC binds 127.0.0.1 as an IPv4-mapped IPv6 socket)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            count += sum(1 for row in rows if row.split()[3] == "0A"
                         and int(row.split()[1].rsplit(":", 1)[1], 16) == port)
    return count


def http_client(server: ServerProcess) -> object:
    return http.InferenceServerClient(url=server.url.removeprefix("http://"))


def grpc_client(server: ServerProcess) -> object:
    return grpcclient.InferenceServerClient(url=server.grpc_url)  # type: ignore[attr-defined]


@pytest.mark.parametrize("client_kind", ["http", "grpc"])
@pytest.mark.parametrize("dtype,datatype", [(np.float32, "FP32"), (np.float64, "FP64")])
def test_one_tensor_at_the_clients_defaults(server: ServerProcess, iris_model: object, client_kind: str,
                                            dtype: type, datatype: str) -> None:
    module = http if client_kind == "http" else grpcclient
    client = http_client(server) if client_kind == "http" else grpc_client(server)
    rows = ROWS.to_numpy().astype(dtype)
    tensor = module.InferInput("input-0", list(rows.shape), datatype)
    tensor.set_data_from_numpy(rows)  # binary_data=True for http: the client's default
    result = client.infer("iris", inputs=[tensor])  # no outputs named: all of them, binary
    expected = iris_model.predict(ROWS)  # type: ignore[attr-defined]
    assert result.as_numpy("predict").tolist() == expected.tolist()
    if client_kind == "http":
        assert result.get_output("predict")["parameters"]["binary_data_size"] == 8 * len(rows)


@pytest.mark.parametrize("client_kind", ["http", "grpc"])
def test_one_tensor_per_column_and_requested_outputs(server: ServerProcess, iris_model: object,
                                                     client_kind: str) -> None:
    module = http if client_kind == "http" else grpcclient
    client = http_client(server) if client_kind == "http" else grpc_client(server)
    tensors = []
    for column in ROWS.columns:
        values = ROWS[column].to_numpy(dtype=np.float64)
        tensor = module.InferInput(column, [len(values)], "FP64")
        tensor.set_data_from_numpy(values)
        tensors.append(tensor)
    outputs = [module.InferRequestedOutput("predict"), module.InferRequestedOutput("predict_proba")]
    result = client.infer("iris", inputs=tensors, outputs=outputs, request_id="req-7")
    assert result.as_numpy("predict").tolist() == iris_model.predict(ROWS).tolist()  # type: ignore[attr-defined]
    probabilities = result.as_numpy("predict_proba")
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities, iris_model.predict_proba(ROWS))  # type: ignore[attr-defined]
    response = result.get_response()
    assert (response.id if client_kind == "grpc" else response["id"]) == "req-7"


def test_http_mixed_binary_and_json_outputs(server: ServerProcess, iris_model: object) -> None:
    client = http_client(server)
    rows = ROWS.to_numpy().astype(np.float32)
    tensor = http.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows)
    outputs = [http.InferRequestedOutput("predict", binary_data=False),
               http.InferRequestedOutput("predict_proba", binary_data=True)]
    result = client.infer("iris", inputs=[tensor], outputs=outputs)
    assert result.get_output("predict")["data"] == iris_model.predict(ROWS).tolist()  # type: ignore[attr-defined]
    assert result.get_output("predict_proba")["parameters"]["binary_data_size"] == 4 * 3 * 8
    assert result.as_numpy("predict_proba").shape == (4, 3)


@pytest.mark.parametrize("client_kind", ["http", "grpc"])
def test_health_and_metadata(server: ServerProcess, client_kind: str) -> None:
    client = http_client(server) if client_kind == "http" else grpc_client(server)
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    if client_kind == "http":
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        metadata = client.get_model_metadata("iris")
        assert metadata["inputs"][0]["shape"] == [-1, 4]
    else:
        assert "binary_tensor_data" in client.get_server_metadata().extensions
        metadata = client.get_model_metadata("iris", as_json=True)
        assert [int(d) for d in metadata["inputs"][0]["shape"]] == [-1, 4]
        assert [o["name"] for o in metadata["outputs"]] == ["predict", "predict_proba"]


@pytest.mark.parametrize("client_kind", ["http", "grpc"])
def test_errors_reach_the_client(server: ServerProcess, client_kind: str) -> None:
    module = http if client_kind == "http" else grpcclient
    client = http_client(server) if client_kind == "http" else grpc_client(server)
    rows = ROWS.to_numpy().astype(np.float32)

    def infer(model: str, tensor: object) -> None:
        client.infer(model, inputs=[tensor])

    good = module.InferInput("input-0", list(rows.shape), "FP32")
    good.set_data_from_numpy(rows)
    with pytest.raises(InferenceServerException, match="no model named 'nope'; served: iris") as unknown:
        infer("nope", good)
    if client_kind == "grpc":
        assert unknown.value.status() == "StatusCode.NOT_FOUND"
    else:
        assert unknown.value.status() == "404"
    narrow = module.InferInput("input-0", [4, 3], "FP32")
    narrow.set_data_from_numpy(rows[:, :3])
    with pytest.raises(InferenceServerException, match="expected 4 values"):
        infer("iris", narrow)
    text = module.InferInput("input-0", [4, 4], "BYTES")
    text.set_data_from_numpy(np.array([["a", "b", "c", "d"]] * 4, dtype=object))
    with pytest.raises(InferenceServerException, match="number|numeric|string"):
        infer("iris", text)


def test_grpc_typed_contents_and_api_keys(tmp_path: Path, iris_bundle: Path, iris_model: object) -> None:
    """A client that sends typed ``contents`` (KServe's InferenceGRPCClient can), and bearer keys over gRPC."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    grpc_port = free_port()
    process = ServerProcess(str(iris_bundle), "--workers", "1", "--grpc-port", str(grpc_port), "--api-key", "s3cret",
                            "--max-body-mb", "0.01",  # 10,485 bytes: a bound for gRPC messages too
                            env={"BERTH_MONITOR_DIR": str(tmp_path / "monitoring")})
    try:
        process.wait_ready()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            assert stub.ServerLive(service_pb2.ServerLiveRequest()).live  # health needs no key
            request = service_pb2.ModelInferRequest(model_name="iris")
            tensor = request.inputs.add(name="input-0", datatype="FP64", shape=[4, 4])
            tensor.contents.fp64_contents.extend(ROWS.to_numpy().reshape(-1).tolist())
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(request)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            key = [("authorization", "Bearer s3cret")]
            response = stub.ModelInfer(request, metadata=[*key, ("x-request-id", "grpc-1")])
            labels = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
            assert labels.tolist() == iris_model.predict(ROWS).tolist()  # type: ignore[attr-defined]
            assert response.outputs[0].name == "predict" and list(response.outputs[0].shape) == [4]
            truncated = service_pb2.ModelInferRequest(model_name="iris", raw_input_contents=[b"\0" * 120])
            truncated.inputs.add(name="input-0", datatype="FP64", shape=[4, 4])
            with pytest.raises(grpc.RpcError) as short:
                stub.ModelInfer(truncated, metadata=key)
            assert short.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "needs 128 bytes, the raw contents hold 120" in short.value.details()
            large = service_pb2.ModelInferRequest(model_name="iris", raw_input_contents=[b"\0" * 16_000])
            large.inputs.add(name="input-0", datatype="FP64", shape=[500, 4])
            with pytest.raises(grpc.RpcError) as too_large:
                stub.ModelInfer(large, metadata=key)
            assert too_large.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        metrics = httpx.get(process.url + "/metrics").text
        assert 'berth_requests_total{model="iris",route="grpc:ModelInfer",status="200",' in metrics
        assert 'route="grpc:ModelInfer",status="401"' not in metrics  # refused before it reached the model
    finally:
        process.stop()
    logged = Store(tmp_path / "monitoring").read("iris")  # the prediction log, flushed on shutdown
    assert logged["request_id"].to_pylist() == ["grpc-1"] * 4


def test_grpc_with_several_workers(iris_bundle: Path, iris_model: object) -> None:
    """Every worker serves gRPC on the same port (SO_REUSEPORT), as it does HTTP."""
    grpc_port = free_port()
    process = ServerProcess(str(iris_bundle), "--workers", "2", "--grpc-port", str(grpc_port))
    try:
        process.wait_listening(2)
        process.wait_ready()
        deadline = time.monotonic() + 60
        while listening_sockets(grpc_port) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert listening_sockets(grpc_port) == 2
        rows = ROWS.to_numpy()
        for _ in range(4):  # a new connection each time: the kernel spreads them over the workers
            client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{grpc_port}")
            tensor = grpcclient.InferInput("input-0", list(rows.shape), "FP64")
            tensor.set_data_from_numpy(rows)
            result = client.infer("iris", inputs=[tensor])
            assert result.as_numpy("predict").tolist() == iris_model.predict(ROWS).tolist()  # type: ignore[attr-defined]
            client.close()
    finally:
        process.stop()
