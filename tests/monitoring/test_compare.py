"""Champion / challenger comparison over a prediction log with shadow rows, labels and old files without the
shadow column; and its CLI, HTML section and place in the report."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from berth.cli import app
from berth.model import LoadedModel
from berth.monitoring.compare import compare, detect_pair, regression_scores, wilson
from berth.monitoring.feedback import record_feedback
from berth.monitoring.log import PendingRecord, PredictionLog
from berth.monitoring.report import build_report, render_html
from berth.monitoring.store import Store
from tests.monitoring.conftest import IRIS_X, IRIS_Y

N = 600


def wrong(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = labels.copy()
    out[mask] = (labels[mask] + 1) % 3
    return out


def log_pair(store: Store, model: LoadedModel, *, base_ok: float, cand_ok: float, seed: int = 0,
             shadow: bool = True, cand_errors: int = 0, versions: tuple[str, str] = ("1", "2"),
             prefix: str = "q") -> tuple[list[str], np.ndarray]:
    """N requests answered by version 1 with ``base_ok`` right, and the candidate (version 2) shadowing each
    with ``cand_ok`` right (or answering other requests, ``shadow=False``); returns ids and true labels."""
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(IRIS_X), N)
    rows, truth = IRIS_X.to_numpy()[index], IRIS_Y.to_numpy()[index]
    base = wrong(truth, rng.random(N) > base_ok)
    cand = wrong(truth, rng.random(N) > cand_ok)
    log, now, ids = PredictionLog(store), time.time(), []
    for i in range(N):
        rid = f"{prefix}{i}"
        ids.append(rid)
        if shadow or i % 2 == 0:
            log.offer(PendingRecord(now + i * 0.001, "iris", versions[0], rid, [rows[i].tolist()], base[i:i + 1], None,
                                    0.002, model))
        if shadow or i % 2 == 1:
            failed = i < cand_errors
            log.offer(PendingRecord(now + i * 0.001 + 0.0005, "iris", versions[1], rid, [rows[i].tolist()],
                                    None if failed else cand[i:i + 1], None, 0.004, model, shadow=shadow,
                                    error="RuntimeError: broken" if failed else None, rows=1))
    log.flush()
    record_feedback(store, "iris", [{"request_id": rid, "label": int(t)} for rid, t in zip(ids, truth, strict=True)])
    return ids, truth


def test_wilson_and_bootstrap_intervals() -> None:
    low, high = wilson(90, 100)
    assert low == pytest.approx(0.8256, abs=1e-3) and high == pytest.approx(0.9448, abs=1e-3)
    assert wilson(0, 0) == (None, None)
    scores = regression_scores(np.zeros(200), np.linspace(-1, 1, 200))
    assert scores["mae"]["low"] < scores["mae"]["value"] < scores["mae"]["high"]
    assert scores["rmse"]["value"] == pytest.approx(math.sqrt(np.mean(np.linspace(-1, 1, 200) ** 2)))


def test_paired_shadow_comparison(store: Store, loaded: LoadedModel) -> None:
    log_pair(store, loaded, base_ok=0.85, cand_ok=0.97, cand_errors=6)
    assert detect_pair(store, "iris", None, None) == ("1", "2")
    result = compare("iris", "1", "2", store=store)
    base, cand = result["versions"]["1"], result["versions"]["2"]
    assert (base["requests"], base["shadow_requests"], cand["requests"], cand["shadow_requests"]) == (N, 0, 0, N)
    assert cand["errors"] == 6 and cand["error_rate"] == pytest.approx(6 / N)
    assert base["labelled"] == N and cand["labelled"] == N - 6  # failed shadow calls have no prediction
    accuracy = base["metrics"]["accuracy"]
    assert accuracy["low"] < accuracy["value"] < accuracy["high"] and 0.8 < accuracy["value"] < 0.9
    assert cand["metrics"]["accuracy"]["value"] > 0.95
    assert cand["metrics"]["f1"]["low"] is not None
    assert result["agreement"]["pairs"] == N - 6 and 0.8 < result["agreement"]["rate"] < 0.9
    test = result["test"]
    assert test["test"] == "mcnemar-exact" and test["pairs"] == N - 6
    assert test["difference"] > 0.08 and test["p_value"] < 1e-6
    assert base["latency_ms"]["of"] == "answers" and cand["latency_ms"]["of"] == "shadow calls"
    assert cand["latency_ms"]["p50"] == pytest.approx(4.0) and base["latency_ms"]["p99"] == pytest.approx(2.0)
    assert base["drift"]["share"] is not None and cand["prediction_drift"] is not None
    # the report counts what callers got, and carries the comparison section
    report = build_report("iris", store=store)
    assert report["rows"] == N and report["comparison"]["candidate"] == "2"
    assert "Champion / challenger: version 1 vs 2" in render_html(report)


def test_canary_comparison_without_pairs_uses_an_unpaired_test(store: Store, loaded: LoadedModel) -> None:
    log_pair(store, loaded, base_ok=0.9, cand_ok=0.9, shadow=False)
    assert detect_pair(store, "iris", None, None) in {("1", "2"), ("2", "1")}
    result = compare("iris", "1", "2", store=store)
    assert result["versions"]["2"]["requests"] == N // 2 and result["agreement"]["pairs"] == 0
    assert result["test"]["test"] == "two-proportion-z" and result["test"]["p_value"] > 0.01


def test_logs_written_before_shadows_are_read(store: Store, loaded: LoadedModel) -> None:
    log_pair(store, loaded, base_ok=0.9, cand_ok=0.9, shadow=False)
    for path in store.files("iris"):  # rewrite every file as an older berth wrote it: no shadow, no error
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        pq.write_table(table.drop_columns(["shadow", "error"]), path)
    result = compare("iris", "1", "2", store=store)
    assert result["versions"]["1"]["requests"] == N // 2
    assert build_report("iris", store=store)["rows"] == N


def test_the_compare_command(store: Store, loaded: LoadedModel, tmp_path: Path) -> None:
    log_pair(store, loaded, base_ok=0.85, cand_ok=0.97)
    runner = CliRunner()
    page = tmp_path / "compare.html"
    done = runner.invoke(app, ["monitor", "compare", "iris", "--baseline", "1", "--candidate", "2", "--json",
                               "--monitor-dir", str(store.root), "--html", str(page)])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["test"]["test"] == "mcnemar-exact"
    assert "candidate 2" in page.read_text()
    text = runner.invoke(app, ["monitor", "compare", "iris", "--baseline", "1", "--candidate", "2",
                               "--monitor-dir", str(store.root)])
    assert text.exit_code == 0 and "accuracy" in text.output and "mcnemar-exact" in text.output
    missing = runner.invoke(app, ["monitor", "compare", "iris", "--baseline", "production", "--candidate", "2",
                                  "--monitor-dir", str(store.root), "--registry",
                                  f"sqlite:///{tmp_path / 'empty.db'}"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_the_streamed_report_counts_served_rows_only(store: Store, loaded: LoadedModel) -> None:
    """A large window (streamed) leaves shadow rows and failed requests out, as the in-memory report does."""
    log_pair(store, loaded, base_ok=0.9, cand_ok=0.8, cand_errors=20)
    memory = build_report("iris", store=store)
    streamed = build_report("iris", store=store, stream_rows=0)
    assert streamed.get("streamed") and not memory.get("streamed")
    assert memory["rows"] == streamed["rows"] == N  # version 1's answers; version 2 only shadowed
    assert streamed["versions"] == memory["versions"] == ["1"]
    assert streamed["comparison"] is not None and memory["comparison"] is not None
