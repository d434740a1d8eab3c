"""Requests that used to give 500s or unbounded state: each class found by fuzzing, now a 4xx naming the field."""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.errors import BodyTimeoutError
from berth.serving.metrics import MAX_LABEL_CHARS, MAX_SERIES, OVERFLOW, UNKNOWN, Metrics, label_value
from berth.serving.middleware import BodyLimitMiddleware
from tests.serving.conftest import ROW, make_client


@pytest.fixture
def small_client(iris_bundle: Path, tmp_path: Path) -> Iterator[Any]:
    with make_client([iris_bundle], max_body_mb=0.001, monitor_dir=str(tmp_path)) as client:
        yield client


def test_a_chunked_body_over_the_limit_is_413_on_every_route(small_client: Any) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b'{"features": [1, 2, 3, 4]}' * 10

    for path in ("/predict", "/invocations", "/v2/models/iris/infer", "/feedback", "/models/iris/predict"):
        response = small_client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert response.status_code == 413, (path, response.text)


@pytest.mark.parametrize("split", [{"columns": 5, "data": [[1]]}, {"columns": [True], "data": [[1]]},
                                   {"columns": [{"a": 1}], "data": [[1]]}])
def test_malformed_dataframe_split_names_the_columns(small_client: Any, split: Any) -> None:
    response = small_client.post("/invocations", json={"dataframe_split": split})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "dataframe_split", "columns"]


@pytest.mark.parametrize("item", [{"request_id": "a", "row": 2**31, "label": 1},
                                  {"request_id": "a", "row": 2**31 - 2, "label": [1, 2, 3]},
                                  {"request_id": "a", "row": 10**30, "label": 1}])
def test_feedback_rows_out_of_range_are_400(small_client: Any, item: Any) -> None:
    response = small_client.post("/feedback", json=item)
    assert response.status_code == 400 and response.json()["error"]["details"][0]["loc"] == ["body", "row"]


def test_v2_tensor_of_absurd_rank_or_a_non_string_id_is_400(small_client: Any) -> None:
    tensor = {"name": "input-0", "shape": [1] * 100, "datatype": "FP32", "data": [1]}
    response = small_client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert response.status_code == 400 and "at most 32 dimensions" in response.json()["error"]
    tensor = {"name": "input-0", "shape": [True, 4], "datatype": "FP32", "data": ROW}
    assert small_client.post("/v2/models/iris/infer", json={"inputs": [tensor]}).status_code == 400
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": ROW}
    response = small_client.post("/v2/models/iris/infer", json={"inputs": [tensor], "id": {"a": 1}})
    assert response.status_code == 400 and "'id'" in response.json()["error"]


def test_v2_versioned_routes_check_the_version(small_client: Any) -> None:
    assert small_client.get("/v2/models/iris/versions/nope").status_code == 404
    version = small_client.get("/v2/models/iris").json()["versions"][0]
    assert small_client.get(f"/v2/models/iris/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize("window", ["99999999999999999999d", "1e400s", "5000000w", "x"])
def test_an_overflowing_dashboard_window_is_400(small_client: Any, window: str) -> None:
    response = small_client.get("/dashboard/api/report", params={"model": "iris", "window": window})
    assert response.status_code == 400


@pytest.mark.parametrize("row", [[1e39, 1, 1, 1], [10**40, 1, 1, 1]])
def test_values_that_overflow_the_model_dtype_are_reported(row: list[float]) -> None:
    import numpy as np

    from berth.coercion import _Problems, checked_cast

    problems = _Problems()
    checked_cast(np.asarray([row]), "float32", problems)
    assert problems.count == 1 and problems.details[0]["msg"] == "value out of range for float32"
    problems = _Problems()
    checked_cast(np.asarray([2**40, 1]), "int32", problems, field="x")
    assert problems.details == [{"loc": [0, "x"], "msg": "value out of range for int32"}]


def test_unknown_model_names_collapse_to_one_label(small_client: Any) -> None:
    rng = random.Random(0)
    for _ in range(2000):
        name = "".join(rng.choices(string.ascii_letters, k=40))
        method, path = rng.choice([("POST", f"/models/{name}/predict"), ("POST", f"/v2/models/{name}/infer"),
                                   ("GET", f"/v2/models/{name}")])
        response = small_client.request(method, path, json={"features": ROW})
        assert response.status_code == 404
    metrics = small_client.get("/metrics").text
    assert len(metrics) < 30_000
    assert f'model="{UNKNOWN}"' in metrics and "berth_requests_total" in metrics


def test_label_values_are_bounded_in_length_and_number() -> None:
    assert label_value("x" * 1000) != label_value("x" * 999)
    assert len(label_value("x" * 1000)) == MAX_LABEL_CHARS
    assert label_value("a\nb\x00") == "a?b?"
    metrics = Metrics()
    for i in range(MAX_SERIES + 50):
        metrics.requests.labels("/predict", f"model-{i}", "1", "200").inc()
    body = metrics.render()[0].decode()
    assert OVERFLOW in body and body.count("berth_requests_total{") == MAX_SERIES + 1


def test_a_body_that_trickles_past_its_deadline_is_408() -> None:
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"x", "more_body": True}  # forever, one byte at a time

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    middleware = BodyLimitMiddleware(app, max_bytes=10_000, timeout_s=0.3)
    asyncio.run(middleware({"type": "http", "path": "/predict", "headers": []}, receive, send))
    assert sent[0]["status"] == BodyTimeoutError.status_code == 408
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_stuck_predict_fails_liveness_and_readiness_until_it_returns(tmp_path: Path) -> None:
    """With one worker there is no supervisor: the probes are what an orchestrator restarts the server on."""
    import berth
    from tests.serving.models import HangsOnMarker

    marker = tmp_path / "hang"
    berth.save(HangsOnMarker(str(marker)), tmp_path / "model", sample=[[1.0]])
    with make_client([tmp_path / "model"], trust=True, timeout_s=0.2, heartbeat_timeout_s=0.2,
                     monitor_dir=str(tmp_path / "monitoring")) as client:
        marker.touch()
        assert client.post("/predict", json={"features": [1.0]}).status_code == 504
        deadline = time.monotonic() + 60
        while client.get("/health/live").status_code == 200:
            assert time.monotonic() < deadline, "liveness never failed"
            time.sleep(0.05)
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["stuck_predict_s"] > 0
        marker.unlink()
        (tmp_path / "hang.release").touch()
        while client.get("/health/live").status_code != 200:
            assert time.monotonic() < deadline, "liveness never came back"
            time.sleep(0.05)
        assert client.post("/predict", json={"features": [1.0]}).status_code == 200


def test_closing_a_batcher_does_not_wait_for_a_stuck_predict() -> None:
    import threading

    from berth.serving.batching import Batcher

    release = threading.Event()
    batcher: Batcher[int, int] = Batcher(lambda parts: [release.wait() and p for p in parts], max_batch_size=4,
                                         max_delay_s=0)

    async def scenario() -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(batcher.submit(1, 1), 0.2)
        assert batcher.busy_for > 0
        await batcher.close()

    closing = threading.Thread(target=asyncio.run, args=(scenario(),))
    closing.start()
    closing.join(60)
    stuck = closing.is_alive()
    release.set()
    assert not stuck, "close() waited for the stuck predict call"


@pytest.mark.parametrize("body", [
    {"features": [1e39, 3.0, 1.4, 0.2]},                                          # rows -> matrix
    {"instances": [{"sepal length (cm)": 5.1, "sepal width (cm)": 1e39, "petal length (cm)": 1.4,
                  "petal width (cm)": 0.2}]},                                      # records
])
def test_a_forest_answers_422_naming_the_field_for_values_beyond_float32(iris_bundle: Path, tmp_path: Path,
                                                                         body: dict[str, Any]) -> None:
    """scikit-learn's trees cast their input to float32 and raise on a finite float64 beyond its range: that
    is the client's value, so a 422 naming row and field, not the model's error as a 500."""
    with make_client([iris_bundle], monitor_dir=str(tmp_path)) as client:
        answer = client.post("/predict", json=body)
        assert answer.status_code == 422, answer.text
        (detail,) = answer.json()["error"]["details"]
        assert detail["msg"] == "value out of range for float32" and detail["loc"][-1].endswith("(cm)"), detail
        inside = client.post("/predict", json={"features": [6.3, 3.3, 6.0, 2.5]})
        assert inside.status_code == 200
