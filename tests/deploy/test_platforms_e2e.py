"""Each cloud platform's contract, route by route, against a real ``berth serve`` process.

The server is started the way the platform starts it: SageMaker with the bare ``serve`` argument and
``SAGEMAKER_BIND_TO_PORT``, Vertex AI with its ``AIP_*`` variables and no port option; Azure ML and KServe
route to the ports they are told.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server_process import BERTH, ROOT, ServerProcess, free_port
from tests.serving.conftest import IRIS_X

pytestmark = pytest.mark.slow
ROWS = IRIS_X.iloc[[0, 60, 120]]


class PlatformServer(ServerProcess):
    """``berth serve ARGS`` with the platform's variables: the port comes from them, not from ``--port``."""

    def __init__(self, *args: str, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "AIP_", "SAGEMAKER_"))}
        self.process = subprocess.Popen(
            [str(BERTH), "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**clean, "PYTHONPATH": str(ROOT), "BERTH_HOST": "127.0.0.1", "BERTH_WORKERS": "1", **env},
            start_new_session=True)


@pytest.fixture
def started() -> Iterator[list[ServerProcess]]:
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        server.stop()


def test_sagemaker(iris_bundle: Path, iris_model, started: list[ServerProcess]) -> None:
    port = free_port()
    server = PlatformServer(str(iris_bundle), "serve", port=port, env={"SAGEMAKER_BIND_TO_PORT": str(port)})
    started.append(server)
    server.wait_ready()
    assert httpx.get(server.url + "/ping").status_code == 200
    expected = iris_model.predict(ROWS).tolist()
    response = httpx.post(server.url + "/invocations", content=ROWS.to_csv(index=False),
                          headers={"content-type": "text/csv"})
    assert response.json() == {"predictions": expected}
    response = httpx.post(server.url + "/invocations", json={"dataframe_split": {
        "columns": list(ROWS.columns), "data": ROWS.values.tolist()}})
    assert response.json() == {"predictions": expected}
    server.terminate()
    assert server.wait() == 0


def test_sagemaker_default_port_is_8080(iris_bundle: Path, started: list[ServerProcess]) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8080))
        except OSError:
            pytest.skip("port 8080 is taken on this machine")
    server = PlatformServer(str(iris_bundle), "serve", port=8080, env={})
    started.append(server)
    server.wait_ready()
    assert httpx.get("http://127.0.0.1:8080/ping").status_code == 200


def test_vertex(iris_bundle: Path, iris_model, started: list[ServerProcess]) -> None:
    port = free_port()
    health, predict = "/v1/endpoints/12/deployedModels/34", "/v1/endpoints/12/deployedModels/34:predict"
    server = PlatformServer(str(iris_bundle), port=port, env={
        "AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": health, "AIP_PREDICT_ROUTE": predict,
        "BERTH_PORT": str(free_port())})  # the platform's port wins over the image's
    started.append(server)
    server.wait_ready()
    assert httpx.get(server.url + health).json() == {"ready": True}
    response = httpx.post(server.url + predict, json={"instances": ROWS.to_dict(orient="records"),
                                                      "parameters": {}})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": iris_model.predict(ROWS).tolist()}
    assert httpx.post(server.url + predict, json={"rows": []}).status_code == 422


def test_azure_score_and_kserve_v2(iris_bundle: Path, iris_model, started: list[ServerProcess]) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "1")
    started.append(server)
    server.wait_ready()
    expected = iris_model.predict(ROWS).tolist()
    split = {"columns": list(ROWS.columns), "index": [0, 1, 2], "data": ROWS.values.tolist()}
    response = httpx.post(server.url + "/score", json={"input_data": split})
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": expected}
    assert httpx.get(server.url + "/health/live").status_code == 200
    # KServe: the Open Inference Protocol
    assert httpx.get(server.url + "/v2/health/live").status_code == 200
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    assert httpx.get(server.url + "/v2/models/iris/ready").json()["ready"] is True
    body = {"inputs": [{"name": "input-0", "shape": list(ROWS.shape), "datatype": "FP64",
                        "data": ROWS.values.flatten().tolist()}]}
    response = httpx.post(server.url + "/v2/models/iris/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == expected
