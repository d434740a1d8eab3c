"""Canary and shadow candidates given as serve options (in-process app): which version answers, how sticky
route keys are, and that a shadow's outcome never reaches the caller."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pytest

import berth
from berth.errors import UsageError
from berth.monitoring.report import build_report
from berth.monitoring.store import Store
from berth.serving.arms import parse_spec
from berth.serving.launch import plan
from berth.serving.slot import BUCKETS, route_bucket, to_candidate
from tests.rollout.conftest import X, Y, other_columns_bundle, save_models
from tests.rollout.models import Misbehaving
from tests.serving.conftest import ROW, make_client

BODY = {"features": ROW}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return save_models(tmp_path_factory.mktemp("bundles"))


def version_of(path: Path) -> str:
    return berth.inspect(path).content_digest.split(":")[1][:12]


def eventually(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------- parsing


def test_specs_parse_and_bad_ones_are_refused() -> None:
    assert parse_spec("models:/iris@candidate=10", "canary") == ("models:/iris@candidate", 10.0)
    assert parse_spec("models:/iris@candidate", "shadow") == ("models:/iris@candidate", 1.0)
    assert parse_spec("models:/iris@candidate=0.25", "shadow") == ("models:/iris@candidate", 0.25)
    assert parse_spec("s3://b/m?x=y", "shadow") == ("s3://b/m?x=y", 1.0)
    for text, kind in (("models:/iris@candidate", "canary"), ("models:/iris@c=101", "canary"),
                       ("models:/iris@c=-1", "canary"), ("models:/iris@c=1.5", "shadow"), ("=5", "canary"),
                       ("models:/iris@c=nan", "canary")):
        with pytest.raises(UsageError):
            parse_spec(text, kind)
    with pytest.raises(UsageError, match="--canary"):
        plan(["models:/iris@production"], {"canary": "models:/iris@candidate"})


def test_route_buckets_are_stable_and_monotone() -> None:
    keys = [f"user-{i}" for i in range(5000)]
    assert [route_bucket(k) for k in keys[:50]] == [route_bucket(k) for k in keys[:50]]
    at10 = {k for k in keys if to_candidate(10, k)}
    at30 = {k for k in keys if to_candidate(30, k)}
    assert at10 <= at30  # raising the share only moves more callers over
    assert abs(len(at10) - 500) < 5 * math.sqrt(5000 * 0.1 * 0.9)
    assert not any(to_candidate(0, k) for k in keys[:100]) and all(to_candidate(100, k) for k in keys[:100])
    assert all(0 <= route_bucket(k) < BUCKETS for k in keys)


# ---------------------------------------------------------------------------------------------- canary


def test_canary_share_is_within_a_binomial_bound_and_every_answer_names_its_version(bundles: list[Path]) -> None:
    baseline, candidate = version_of(bundles[0]), version_of(bundles[2])
    n, percent = 1500, 20
    with make_client([bundles[0]], canary=f"{bundles[2]}={percent}", log_predictions=False) as client:
        seen = Counter()
        for _ in range(n):
            response = client.post("/predict", json=BODY)
            assert response.status_code == 200
            assert response.json()["version"] == response.headers["x-berth-model-version"]
            seen[response.headers["x-berth-model-version"]] += 1
        state = client.get("/health/ready").json()
    assert set(seen) == {baseline, candidate}
    sd = math.sqrt(n * 0.2 * 0.8)
    assert abs(seen[candidate] - n * 0.2) < 5 * sd, seen
    assert state["ready"] is True
    assert state["models"]["iris"]["canary"] == {"version": candidate, "percent": 20.0, "source": f"{bundles[2]}"}


def test_route_keys_are_sticky_on_every_protocol_and_through_weight_changes(bundles: list[Path]) -> None:
    candidate = version_of(bundles[2])
    with make_client([bundles[0]], canary=f"{bundles[2]}=30", log_predictions=False) as client:
        slot = client.app.state.plane.slots["iris"]
        first: dict[str, str] = {}
        for i in range(60):
            key = {"x-berth-route-key": f"caller-{i}"}
            versions = {
                client.post("/predict", json=BODY, headers=key).headers["x-berth-model-version"],
                client.post("/invocations", json={"inputs": [ROW]}, headers=key).headers["x-berth-model-version"],
                client.post("/v2/models/iris/infer", headers=key, json={"inputs": [
                    {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
                .headers["x-berth-model-version"],
            }
            assert len(versions) == 1, versions  # one caller, one version, whatever the protocol
            first[key["x-berth-route-key"]] = versions.pop()
            again = client.post("/predict", json=BODY, headers=key).headers["x-berth-model-version"]
            assert again == first[key["x-berth-route-key"]]
        on_candidate = {k for k, v in first.items() if v == candidate}
        assert 0 < len(on_candidate) < 60
        slot.canary.share = 60  # a live weight change: callers on the candidate stay there
        later = {k: client.post("/predict", json=BODY, headers={"x-berth-route-key": k})
                 .headers["x-berth-model-version"] for k in first}
        assert on_candidate <= {k for k, v in later.items() if v == candidate}
        assert len({k for k, v in later.items() if v == candidate}) > len(on_candidate)
        # asking for a version by path reaches it, whatever the split; metadata routes stay on the baseline
        response = client.post(f"/v2/models/iris/versions/{candidate}/infer", json={"inputs": [
            {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]})
        assert response.status_code == 200 and response.json()["model_version"] == candidate
        assert client.get("/v2/models/iris").headers["x-berth-model-version"] == version_of(bundles[0])


def test_a_candidate_that_cannot_be_served_is_refused_and_reported(bundles: list[Path], tmp_path: Path) -> None:
    other = other_columns_bundle(tmp_path)
    with make_client([bundles[0]], canary=f"{other}=50", log_predictions=False) as client:
        state = client.get("/health/ready").json()
        assert state["ready"] is True  # the baseline serves alone
        assert "cannot be served" in state["models"]["iris"]["problem"]
        assert "canary" not in state["models"]["iris"]
        versions = {client.post("/predict", json=BODY).headers["x-berth-model-version"] for _ in range(30)}
        assert versions == {version_of(bundles[0])}


# ---------------------------------------------------------------------------------------------- shadow


def test_shadow_answers_are_logged_under_the_request_id_and_never_returned(bundles: list[Path],
                                                                             tmp_path: Path) -> None:
    baseline, candidate = version_of(bundles[0]), version_of(bundles[1])
    with make_client([bundles[0]], shadow=str(bundles[1]), monitor_dir=str(tmp_path / "mon"),
                     log_flush_interval_s=0.05) as client:
        ids = []
        for i in range(40):
            response = client.post("/predict", json=BODY, headers={"x-request-id": f"req-{i}"})
            assert response.headers["x-berth-model-version"] == baseline
            ids.append(response.headers["x-request-id"])
        shadows = client.app.state.shadows
        eventually(lambda: shadows.counts["ok"] == 40)
        assert client.get("/health/ready").json()["models"]["iris"]["shadow"]["version"] == candidate
        sample = f'berth_shadow_requests_total{{model="iris",outcome="ok",version="{candidate}"}} 40.0'
        assert sample in client.get("/metrics").text
    store = Store(tmp_path / "mon")
    table = store.read("iris")
    shadow = table.filter(pc.equal(table["shadow"], True))
    served = table.filter(pc.equal(table["shadow"], False))
    assert sorted(shadow["request_id"].to_pylist()) == sorted(ids) == sorted(served["request_id"].to_pylist())
    assert set(shadow["version"].to_pylist()) == {candidate} and set(served["version"].to_pylist()) == {baseline}
    assert build_report("iris", store=store)["rows"] == 40  # reports count the answers callers got


@pytest.mark.parametrize("mode", ["fail", "slow"])
def test_a_failing_or_slow_shadow_never_changes_a_response(bundles: list[Path], tmp_path: Path, mode: str) -> None:
    from sklearn.linear_model import LogisticRegression

    bad = tmp_path / f"iris-{mode}"
    berth.save(Misbehaving(LogisticRegression(max_iter=500).fit(X, Y), mode, seconds=1.0), bad,
               sample=X.head(20), name="iris")
    with make_client([bundles[0]], log_predictions=False) as alone:
        expected = [alone.post("/predict", json={"features": r.tolist()}).json() for r in X.values[:30]]
    with make_client([bundles[0]], shadow=str(bad), trust=True, shadow_timeout_s=0.2,
                     monitor_dir=str(tmp_path / "mon"), log_flush_interval_s=0.05) as client:
        got = [client.post("/predict", json={"features": r.tolist()}).json() for r in X.values[:30]]
        shadows = client.app.state.shadows
        outcome = "error" if mode == "fail" else "timeout"
        eventually(lambda: shadows.counts[outcome] + shadows.counts["dropped"] == 30)
        assert shadows.counts[outcome] > 0 and shadows.counts["ok"] == 0
    assert got == expected
    table = Store(tmp_path / "mon").read("iris")
    failed = table.filter(pc.equal(table["shadow"], True))
    assert failed.num_rows == shadows.counts[outcome]
    assert failed["prediction"].null_count == failed.num_rows
    assert all(failed["error"].to_pylist())


def test_a_full_shadow_queue_drops_and_counts(bundles: list[Path], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    slow = tmp_path / "iris-slow"
    berth.save(Misbehaving(LogisticRegression(max_iter=500).fit(X, Y), "slow", seconds=0.5), slow,
               sample=X.head(20), name="iris")
    with make_client([bundles[0]], shadow=str(slow), trust=True, shadow_queue_size=2, shadow_concurrency=1,
                     shadow_timeout_s=5, log_predictions=False) as client:
        for _ in range(20):
            assert client.post("/predict", json=BODY).status_code == 200
        shadows = client.app.state.shadows
        assert shadows.counts["dropped"] >= 15
    assert sum(shadows.counts.values()) == 20  # every copy is accounted for, stopping included


def test_a_failing_canary_is_logged_as_errors_of_its_version(bundles: list[Path], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    from berth.monitoring.compare import compare

    bad = tmp_path / "iris-fail"
    berth.save(Misbehaving(LogisticRegression(max_iter=500).fit(X, Y), "fail"), bad, sample=X.head(20), name="iris")
    baseline, candidate = version_of(bundles[0]), version_of(bad)
    with make_client([bundles[0]], canary=f"{bad}=50", trust=True, monitor_dir=str(tmp_path / "mon"),
                     log_flush_interval_s=0.05) as client:
        statuses = Counter((r.headers["x-berth-model-version"], r.status_code)
                           for r in (client.post("/predict", json=BODY) for _ in range(80)))
    assert set(statuses) == {(baseline, 200), (candidate, 500)}
    store = Store(tmp_path / "mon")
    result = compare("iris", baseline, candidate, store=store)
    failed = statuses[(candidate, 500)]
    assert result["versions"][candidate]["errors"] == failed and result["versions"][candidate]["error_rate"] == 1.0
    assert result["versions"][baseline]["error_rate"] == 0.0
    assert build_report("iris", store=store)["rows"] == statuses[(baseline, 200)]  # failed requests are not rows


def test_grpc_calls_take_the_canary_by_route_key_and_release_the_shadow(bundles: list[Path]) -> None:
    """ModelInfer over gRPC chooses the version as the HTTP routes do (sticky by x-berth-route-key), and a
    configured shadow's reservation is given back (gRPC calls are not copied to it)."""
    import numpy as np
    import tritonclient.grpc as grpcclient

    from support.ports import free_port

    baseline, candidate = version_of(bundles[0]), version_of(bundles[2])
    port = free_port()
    with make_client([bundles[0]], canary=f"{bundles[2]}=50", shadow=str(bundles[2]), grpc_port=port,
                     log_predictions=False) as http:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        slot = next(iter(http.app.state.plane.slots.values()))  # type: ignore[attr-defined]
        tensor = grpcclient.InferInput("input-0", [1, len(ROW)], "FP64")
        tensor.set_data_from_numpy(np.asarray([ROW], dtype=np.float64))
        keys = [f"caller-{i}" for i in range(40)]
        for key in keys * 2:
            answer = client.infer(slot.name, [tensor], headers={"x-berth-route-key": key}).get_response()
            assert answer.model_version == (candidate if to_candidate(50, key) else baseline), key
        assert {to_candidate(50, key) for key in keys} == {True, False}  # both sides were asked
        pinned = client.infer(slot.name, [tensor], model_version=baseline,
                              headers={"x-berth-route-key": next(k for k in keys if to_candidate(50, k))})
        assert pinned.get_response().model_version == baseline
        client.close()
        assert slot.shadow is not None and slot.shadow.runner.active == 0 and slot.runner.active == 0
