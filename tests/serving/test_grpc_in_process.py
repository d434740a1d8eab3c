"""gRPC started by the app's lifespan, in one process with ``tritonclient.grpc`` (berth's protobuf messages live in
a descriptor pool of their own, so both definitions of the ``inference`` package load side by side)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support.ports import free_port
from tests.serving.conftest import IRIS_X, expected, make_client

grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

ROWS = IRIS_X.iloc[[0, 60, 120]]


def test_grpc_in_the_app_event_loop_next_to_tritonclient(iris_bundle: Path, iris_model: object) -> None:
    from berth.serving.grpc import inference_pb2

    assert inference_pb2.DESCRIPTOR.pool is not None
    port = free_port()
    with make_client([iris_bundle], grpc_port=port) as http:
        assert http.app.state.grpc_port == port  # type: ignore[attr-defined]
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready() and client.is_model_ready("iris")
        tensor = grpcclient.InferInput("input-0", [3, 4], "FP32")
        tensor.set_data_from_numpy(ROWS.to_numpy().astype(np.float32))
        result = client.infer("iris", [tensor], outputs=[grpcclient.InferRequestedOutput("predict"),
                                                         grpcclient.InferRequestedOutput("predict_proba")])
        assert result.as_numpy("predict").tolist() == expected(iris_model, ROWS.to_numpy().tolist())  # type: ignore[arg-type]
        assert result.as_numpy("predict_proba").shape == (3, 3)
        with pytest.raises(InferenceServerException, match="unknown output 'logits'"):
            client.infer("iris", [tensor], outputs=[grpcclient.InferRequestedOutput("logits")])
        client.close()
        metrics = http.get("/metrics").text
    assert 'route="grpc:ModelInfer",status="200"' in metrics
    assert 'route="grpc:ModelInfer",status="400"' in metrics


def test_a_taken_grpc_port_stops_the_start(iris_bundle: Path) -> None:
    import socket

    from berth.errors import UsageError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen for gRPC on 127.0.0.1:{port}"), \
                make_client([iris_bundle], grpc_port=port):
            pass


def test_a_lone_server_does_not_share_its_grpc_port(iris_bundle: Path) -> None:
    """Without SO_REUSEPORT a second server on the port fails instead of silently taking half the calls."""
    from berth.errors import UsageError

    port = free_port()
    with make_client([iris_bundle], grpc_port=port, workers=1), \
            pytest.raises(UsageError, match="cannot listen for gRPC"), \
            make_client([iris_bundle], grpc_port=port, workers=1):
        pass
