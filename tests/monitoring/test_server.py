"""The server records predictions, returns request ids, takes feedback and exposes drift in /metrics."""

from __future__ import annotations

import re
from pathlib import Path

from berth.monitoring.store import FEATURE_PREFIX, Store
from tests.monitoring.conftest import FEATURES, IRIS_X, reference_rows
from tests.serving.conftest import ROW, make_client


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_every_protocol_is_recorded_with_its_request_id(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle], monitor_dir=str(tmp_path)) as client:
        simple = client.post("/predict", json={"instances": [ROW, ROW], "probabilities": True},
                             headers={"x-request-id": "client-1"})
        mlflow = client.post("/invocations", json={"dataframe_split": {"columns": FEATURES, "data": [ROW]}})
        v2 = client.post("/v2/models/iris/infer", json={"inputs": [
            {"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
        bad = client.post("/predict", json={"instances": [["a", 1, 2, 3]]})
        assert [r.status_code for r in (simple, mlflow, v2, bad)] == [200, 200, 200, 422]
        assert simple.headers["x-request-id"] == "client-1"
        assert re.fullmatch(r"[0-9a-f]{32}", mlflow.headers["x-request-id"])
        assert bad.headers["x-request-id"]  # errors carry one too, but are not logged
    table = Store(tmp_path).read("iris")  # leaving the client ran the shutdown, which flushes
    assert table["request_id"].to_pylist() == ["client-1", "client-1", mlflow.headers["x-request-id"],
                                                v2.headers["x-request-id"]]
    assert table["row"].to_pylist() == [0, 1, 0, 0]
    assert table[FEATURE_PREFIX + FEATURES[0]].to_pylist() == [ROW[0]] * 4
    # probabilities are logged for every request of a classifier, asked for or not (so ROC AUC works) ...
    assert [len(p) for p in table["probabilities"].to_pylist()] == [3, 3, 3, 3]
    assert "probabilities" in simple.json() and "probabilities" not in mlflow.json()  # ... and sent only if asked


def test_cloud_platform_routes_are_recorded(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle], monitor_dir=str(tmp_path), predict_route="/vertex/predict") as client:
        azure = client.post("/score", json={"input_data": {"columns": FEATURES, "data": [ROW]}})
        vertex = client.post("/vertex/predict", json={"instances": [ROW, ROW]})
        assert [azure.status_code, vertex.status_code] == [200, 200]
    table = Store(tmp_path).read("iris")
    assert table["request_id"].to_pylist() == [azure.headers["x-request-id"]] + [vertex.headers["x-request-id"]] * 2


def test_logging_off_and_sampling(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle], monitor_dir=str(tmp_path / "off"), log_predictions=False) as client:
        assert client.post("/predict", json={"features": ROW}).status_code == 200
    with make_client([iris_bundle], monitor_dir=str(tmp_path / "none"), log_sample_rate=0.0) as client:
        assert client.post("/predict", json={"features": ROW}).status_code == 200
    assert Store(tmp_path / "off").models() == [] and Store(tmp_path / "none").models() == []


def test_full_queue_is_counted_in_metrics(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle], monitor_dir=str(tmp_path), log_queue_size=2,
                     log_flush_interval_s=3600) as client:
        for _ in range(5):
            assert client.post("/predict", json={"features": ROW}).status_code == 200
        text = client.get("/metrics").text
        assert metric(text, "berth_prediction_log_dropped_total") == 3
    assert Store(tmp_path).read("iris").num_rows == 2


def test_feedback_route(iris_bundle: Path, tmp_path: Path) -> None:
    with make_client([iris_bundle], monitor_dir=str(tmp_path)) as client:
        one = client.post("/feedback", json={"request_id": "a", "label": 0})
        many = client.post("/feedback", json=[{"request_id": "b", "label": [1, 2]}, {"request_id": "c", "label": "2",
                                                                                     "model": "iris"}])
        bad = client.post("/feedback", json=[{"label": 1}, {"request_id": "d"}])
        unknown = client.post("/feedback?model=other", json={"request_id": "e", "label": 1})
    assert one.json() == {"stored": 1, "models": {"iris": 1}} and many.json()["stored"] == 3
    assert bad.status_code == 400 and [d["loc"] for d in bad.json()["error"]["details"]] == [
        ["body", 0, "request_id"], ["body", 1, "label"]]
    assert unknown.status_code == 404
    assert len(Store(tmp_path).files("iris", "feedback")) == 1  # batched by the log's writer, not a file per POST
    labels = Store(tmp_path).feedback("iris").to_pandas()
    assert sorted(zip(labels["request_id"], labels["row"], labels["label"], strict=True)) == [
        ("a", 0, "0"), ("b", 0, "1"), ("b", 1, "2"), ("c", 0, "2")]


def test_drift_gauges_in_metrics(iris_bundle: Path, tmp_path: Path) -> None:
    rows = reference_rows(300, seed=5)
    rows[:, FEATURES.index("petal length (cm)")] += 2 * IRIS_X["petal length (cm)"].std()
    with make_client([iris_bundle], monitor_dir=str(tmp_path), drift_interval_s=0) as client:
        assert client.post("/predict", json={"instances": rows.tolist()}).status_code == 200
        recorder = client.app.state.recorder
        recorder.log.flush()
        recorder.update_drift(["iris"])
        text = client.get("/metrics").text
        dashboard = client.get("/dashboard")
        overview = client.get("/dashboard/api/overview").json()
    assert metric(text, 'berth_feature_drifted{feature="petal length (cm)",model="iris"}') == 1
    assert metric(text, 'berth_feature_drifted{feature="sepal width (cm)",model="iris"}') == 0
    assert metric(text, 'berth_feature_drift_score{feature="petal length (cm)",method="ks",model="iris"}') < 0.05
    assert metric(text, 'berth_dataset_drift{model="iris"}') == 0
    assert metric(text, 'berth_drift_share{model="iris"}') == 0.25
    assert dashboard.status_code == 200, dashboard.text
    assert "berth monitoring" in dashboard.text
    assert overview["models"][0]["live"]["requests"] == 1 and overview["server"]["log_written"] == 300
