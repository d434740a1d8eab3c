"""`berth serve` for real: a subprocess on loopback, real HTTP clients, SIGTERM drain, several workers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

import berth
from support.server_process import ServerProcess
from tests.serving.conftest import IRIS_X, ROW
from tests.serving.models import SlowModel

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(iris_bundle: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(str(iris_bundle), "--workers", "1")
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def test_httpx_client_predicts(server: ServerProcess, iris_model: object) -> None:
    response = httpx.post(server.url + "/predict", json={"features": ROW})
    assert response.status_code == 200
    assert response.json()["predictions"] == iris_model.predict(IRIS_X.head(1)).tolist()  # type: ignore[attr-defined]
    assert response.headers["x-berth-model"] == "iris"


def test_standard_open_inference_protocol_client(server: ServerProcess, iris_model: object) -> None:
    http = pytest.importorskip("tritonclient.http")
    client = http.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    assert client.get_model_metadata("iris")["inputs"][0]["shape"] == [-1, 4]
    rows = IRIS_X.iloc[[0, 60, 120]].to_numpy().astype(np.float32)
    tensor = http.InferInput("input-0", list(rows.shape), "FP32")
    tensor.set_data_from_numpy(rows, binary_data=False)
    outputs = [http.InferRequestedOutput("predict", binary_data=False),
               http.InferRequestedOutput("predict_proba", binary_data=False)]
    result = client.infer("iris", inputs=[tensor], outputs=outputs)
    expected = iris_model.predict(IRIS_X.iloc[[0, 60, 120]])  # type: ignore[attr-defined]
    assert result.as_numpy("predict").tolist() == expected.tolist()
    assert result.as_numpy("predict_proba").shape == (3, 3)
    with pytest.raises(Exception, match="expected 4 values"):
        bad = http.InferInput("input-0", [1, 3], "FP32")
        bad.set_data_from_numpy(rows[:1, :3], binary_data=False)
        client.infer("iris", inputs=[bad])


def test_sigterm_finishes_requests_in_flight_and_exits_zero(tmp_path: Path) -> None:
    berth.save(SlowModel(1.5), tmp_path / "slow", sample=[[1.0]])
    process = ServerProcess(str(tmp_path / "slow"), "--trust", "--workers", "1")
    try:
        process.wait_ready()
        answers: list[httpx.Response] = []
        request = threading.Thread(target=lambda: answers.append(
            httpx.post(process.url + "/predict", json={"features": [1.0]}, timeout=30)))
        request.start()
        import time

        time.sleep(0.5)  # the request is now inside predict
        process.terminate()
        request.join(30)
        assert process.wait(30) == 0
        assert answers and answers[0].status_code == 200 and answers[0].json()["predictions"] == [0.0]
        with pytest.raises(httpx.TransportError):
            httpx.get(process.url + "/health/live", timeout=2)
        output = process.output()
        assert "slow version" in output and "python/cloudpickle" in output and "POST /predict" in output
    finally:
        process.stop()


def test_several_workers_share_the_port_and_the_metrics(iris_bundle: Path) -> None:
    process = ServerProcess(str(iris_bundle), "--workers", "2")
    try:
        process.wait_ready()
        process.wait_listening(2)  # one SO_REUSEPORT socket per worker
        with httpx.Client(base_url=process.url) as client:
            for _ in range(40):
                assert client.post("/predict", json={"features": ROW}).status_code == 200
        # fresh connections land on either worker; wait until both have loaded and answered
        for _ in range(40):
            assert httpx.post(process.url + "/predict", json={"features": ROW}).status_code == 200
        metrics = httpx.get(process.url + "/metrics").text
        line = next(m for m in metrics.splitlines() if m.startswith("berth_requests_total{") and 'status="200"' in m)
        assert float(line.rsplit(" ", 1)[1]) == 80.0
        process.terminate()
        assert process.wait(60) == 0
    finally:
        process.stop()
