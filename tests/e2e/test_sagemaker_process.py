"""SageMaker batch transform against a real server: the container contract (``serve`` argument,
``SAGEMAKER_BIND_TO_PORT``), mini-batches of headerless CSV and JSON Lines, answers in the Accept format."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from support.ports import free_port
from tests.serving.conftest import IRIS_X

pytestmark = pytest.mark.slow
ROWS = IRIS_X.iloc[[0, 60, 120, 149]]
BERTH = Path(sys.executable).parent / "berth"


def test_batch_transform_as_sagemaker_sends_it(iris_bundle: Path, iris_model: object) -> None:
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BIND_TO_PORT": str(port), "BERTH_WORKERS": "1"}
    process = subprocess.Popen([str(BERTH), "serve", str(iris_bundle), "serve"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.3)
        labels = iris_model.predict(ROWS).tolist()  # type: ignore[attr-defined]
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(ROWS.to_numpy().tolist())
        answer = httpx.post(url + "/invocations", content=text.getvalue(),
                            headers={"content-type": "text/csv", "accept": "text/csv"})
        assert answer.status_code == 200, answer.text
        assert answer.text.splitlines() == [str(label) for label in labels]
        lines = b"".join(orjson.dumps(row) + b"\n" for row in ROWS.to_numpy().tolist())
        answer = httpx.post(url + "/invocations", content=lines,
                            headers={"content-type": "application/jsonlines", "accept": "application/jsonlines"})
        assert [orjson.loads(line) for line in answer.content.splitlines()] == labels
        refused = httpx.post(url + "/invocations", content=lines,
                             headers={"content-type": "application/jsonlines", "accept": "application/x-recordio"})
        assert refused.status_code == 406
    finally:
        process.terminate()
        process.wait(60)
        if process.stdout is not None:
            process.stdout.close()
