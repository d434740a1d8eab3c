"""The streaming path (large windows) gives the report the in-memory path gives: same verdicts, near-equal
scores, equal counts. Forced here on small data with stream_rows=0."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pytest

from berth.model import LoadedModel
from berth.monitoring.report import build_report, render_html
from berth.monitoring.store import Store
from tests.monitoring.conftest import FEATURES, IRIS_X, log_rows, reference_rows
from tests.monitoring.test_timeline import fill


def both(store: Store, **options) -> tuple[dict, dict]:
    memory = build_report("iris", store=store, **options)
    seen: list[tuple[int, int]] = []
    streamed = build_report("iris", store=store, stream_rows=0, progress=lambda done, total: seen.append((done, total)),
                            **options)
    assert streamed.get("streamed") and not memory.get("streamed")
    assert seen and seen[-1][0] == seen[-1][1] == memory["rows"]
    return memory, streamed


def test_streamed_report_matches_the_in_memory_one(store: Store, loaded: LoadedModel) -> None:
    log_rows(store, loaded, reference_rows(600, seed=1), start=time.time() - 3600, step=0.1, prefix="old")
    shifted = reference_rows(600, seed=2)
    shifted[:, FEATURES.index("petal length (cm)")] += 2 * IRIS_X["petal length (cm)"].std()
    log_rows(store, loaded, shifted, step=0.001, prefix="new")
    memory, streamed = both(store)
    assert streamed["rows"] == memory["rows"] == 1200 and streamed["versions"] == memory["versions"]
    for one, other in zip(memory["drift"]["features"], streamed["drift"]["features"], strict=True):
        assert (one["feature"], one["method"], one["drifted"], one["n"]) == (
            other["feature"], other["method"], other["drifted"], other["n"])
        assert other["effect"] == pytest.approx(one["effect"], abs=0.012)
        assert one["plot"] == other["plot"]
    assert memory["drift"]["drifted_features"] == streamed["drift"]["drifted_features"] == ["petal length (cm)"]
    assert memory["prediction_drift"]["drifted"] == streamed["prediction_drift"]["drifted"]
    assert memory["prediction_drift"]["plot"] == streamed["prediction_drift"]["plot"]
    for name in FEATURES:
        one, other = memory["quality"]["features"][name], streamed["quality"]["features"][name]
        assert (one["missing"], one["out_of_range"]) == (other["missing"], other["out_of_range"])
    assert [b["rows"] for b in memory["traffic"]["buckets"]] == [b["rows"] for b in streamed["traffic"]["buckets"]]
    assert streamed["traffic"]["latency_ms"]["p50"] == pytest.approx(memory["traffic"]["latency_ms"]["p50"], rel=0.03)
    assert "<svg" in render_html(streamed)


def test_streamed_timeline_matches(store: Store, loaded: LoadedModel) -> None:
    fill(store, loaded, drifted_hours={7, 6, 5}, rows=60)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=13)
    memory, streamed = both(store, since=since)
    assert memory["timeline"]["starts"] == streamed["timeline"]["starts"]
    assert memory["timeline"]["dataset_drift"] == streamed["timeline"]["dataset_drift"]
    assert memory["timeline"]["first_drift"] == streamed["timeline"]["first_drift"]


def test_progress_shows_on_a_terminal_only(monkeypatch, capsys) -> None:
    from berth.cli import monitor

    monkeypatch.setattr("sys.stderr.isatty", lambda: False, raising=False)
    assert monitor._progress() is None
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    show = monitor._progress()
    show(500_000, 1_000_000)
    show(1_000_000, 1_000_000)
    assert "reading the log: 1,000,000 of 1,000,000 rows (100%)" in capsys.readouterr().err


def test_files_stream_row_group_by_row_group_in_order(tmp_path) -> None:
    """A compacted day's file holds several row groups: each is read on its own (memory bounded by a row group,
    not a file), none is skipped or repeated, the window's condition applies, and the order is the files'."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from berth.monitoring.scan import fragments

    big = pa.table({"time": pa.array(np.arange(0, 10_000), pa.int64()), "x": pa.array(np.arange(10_000) * 0.5)})
    small = pa.table({"time": pa.array(np.arange(10_000, 10_300), pa.int64()), "x": pa.array(np.zeros(300))})
    pq.write_table(big, tmp_path / "a.parquet", row_group_size=1_000)
    pq.write_table(small, tmp_path / "b.parquet")
    dataset = ds.dataset([str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")], format="parquet")
    condition = (ds.field("time") >= 2_500) & (ds.field("time") < 10_100)
    pieces = list(fragments(dataset, ["time", "x"], condition))
    assert max(p.num_rows for p in pieces) <= 1_000 and len(pieces) == 9  # row groups 2-9 of a, then b
    streamed = pa.concat_tables(pieces)
    assert streamed.equals(dataset.to_table(columns=["time", "x"], filter=condition))
    assert pa.concat_tables(fragments(dataset, ["x"], None)).num_rows == 10_300
