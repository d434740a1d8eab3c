"""The prediction log and its store: record schema, round trip, time windows, prune, compact, drops."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from berth.errors import UsageError
from berth.model import LoadedModel
from berth.monitoring.log import PendingRecord, PredictionLog, records_to_table
from berth.monitoring.store import FEATURE_PREFIX, Store, parse_duration
from tests.monitoring.conftest import FEATURES, log_rows, reference_rows


def record(model: LoadedModel, data: object, when: float | None = None, request_id: str = "r") -> PendingRecord:
    rows = len(data) if isinstance(data, list) and data and isinstance(data[0], list | dict) else 1
    return PendingRecord(when or time.time(), "iris", "v1", request_id, data, np.zeros(rows, dtype=int), None,
                         0.001, model)


def test_round_trip_keeps_features_outputs_and_ids(store: Store, loaded: LoadedModel) -> None:
    rows = reference_rows(50)
    ids = log_rows(store, loaded, rows)
    table = store.read("iris")
    assert table.num_rows == 50
    assert table["request_id"].to_pylist() == ids
    assert np.allclose(np.column_stack([table[FEATURE_PREFIX + f].to_numpy() for f in FEATURES]), rows)
    assert table["prediction"].to_pylist() == [float(p) for p in loaded.predict(rows.tolist())]
    assert all(len(p) == 3 for p in table["probabilities"].to_pylist())
    assert set(store.versions("iris")["v1"]) >= {"reference", "signature", "metrics"}


def test_every_request_shape_is_recorded_by_column_name(loaded: LoadedModel) -> None:
    row = [5.1, 3.5, 1.4, 0.2]
    shapes = [[row], row, [dict(zip(FEATURES, row, strict=True))], dict(zip(FEATURES, row, strict=True)),
              {f: [v] for f, v in zip(FEATURES, row, strict=True)}, np.array([row])]
    table = records_to_table([record(loaded, shape) for shape in shapes])
    for name, value in zip(FEATURES, row, strict=True):
        assert table[FEATURE_PREFIX + name].to_pylist() == [value] * len(shapes)


def test_type_coercions_are_marked_per_feature(loaded: LoadedModel) -> None:
    table = records_to_table([record(loaded, [[5, 3.5, 1.4, True], [5.0, 3.5, 1.4, 0.2]])])
    assert table["coerced"].to_pylist() == [[FEATURES[0], FEATURES[3]], []]


def test_queries_by_time_window_and_version(store: Store, loaded: LoadedModel) -> None:
    base = dt.datetime(2024, 5, 1, 23, 0, tzinfo=dt.UTC).timestamp()
    log_rows(store, loaded, reference_rows(120), start=base, step=60)  # 23:00 to 00:59 the next day
    log_rows(store, loaded, reference_rows(10), start=base, step=60, prefix="other", version="v2")
    assert len(store.files("iris")) == 3  # the first flush spans two days, the second one
    since = dt.datetime(2024, 5, 1, 23, 30, tzinfo=dt.UTC)
    until = dt.datetime(2024, 5, 2, 0, 30, tzinfo=dt.UTC)
    assert store.read("iris", since, until, version="v1").num_rows == 60
    assert store.read("iris", version="v2").num_rows == 10
    assert len(store.files("iris", since=dt.datetime(2024, 5, 2, tzinfo=dt.UTC))) == 1


def test_prune_deletes_old_days_and_compact_merges_files(store: Store, loaded: LoadedModel) -> None:
    now = dt.datetime(2024, 6, 30, 12, tzinfo=dt.UTC)
    for days_ago in (40, 31, 29, 1):
        log_rows(store, loaded, reference_rows(5), start=(now - dt.timedelta(days=days_ago)).timestamp(),
                 prefix=f"d{days_ago}-")
    log_rows(store, loaded, reference_rows(5), start=(now - dt.timedelta(days=1)).timestamp(), prefix="again")
    removed = store.prune("iris", dt.timedelta(days=30), now=now)
    assert removed == ["2024-05-21", "2024-05-30"]
    assert store.read("iris").num_rows == 15
    assert store.compact("iris", before=now.date()) == 2
    assert len(store.files("iris")) == 2 and store.read("iris").num_rows == 15


def test_each_writer_has_its_own_files(store: Store, loaded: LoadedModel) -> None:
    """Two worker processes never write one file: names carry the pid and a random part."""
    log_rows(store, loaded, reference_rows(3), prefix="a")
    log_rows(store, loaded, reference_rows(3), prefix="b")
    files = store.files("iris")
    assert len(files) == 2 and len({Path(f).name for f in files}) == 2
    assert all(f"-{os.getpid()}-" in Path(f).name for f in files)
    assert all(pq.read_metadata(f).num_rows == 3 for f in files)


def test_full_queue_drops_and_counts_never_blocks(store: Store, loaded: LoadedModel) -> None:
    dropped: list[int] = []
    log = PredictionLog(store, max_queue=3, on_drop=dropped.append)
    accepted = [log.offer(record(loaded, [[5.1, 3.5, 1.4, 0.2]], request_id=str(i))) for i in range(5)]
    assert accepted == [True, True, True, False, False]
    assert (log.dropped, sum(dropped), len(log)) == (2, 2, 3)
    assert log.flush() == 3 and store.read("iris")["request_id"].to_pylist() == ["0", "1", "2"]


def test_background_flusher_writes_in_batches_and_on_close(store: Store, loaded: LoadedModel) -> None:
    async def scenario() -> tuple[int, int]:
        log = PredictionLog(store, batch_size=4, flush_interval_s=3600)
        log.start()
        for i in range(4):  # a full batch wakes the flusher at once
            log.offer(record(loaded, [[5.1, 3.5, 1.4, 0.2]], request_id=str(i)))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if log.written == 4:
                break
        after_batch = log.written
        log.offer(record(loaded, [[5.1, 3.5, 1.4, 0.2]], request_id="last"))
        await log.close()  # shutdown flushes what is left
        return after_batch, log.written

    assert asyncio.run(scenario()) == (4, 5)
    assert store.read("iris").num_rows == 5


def test_a_failing_write_is_counted_not_raised(tmp_path: Path, loaded: LoadedModel) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    log = PredictionLog(Store(blocker))
    log.offer(record(loaded, [[5.1, 3.5, 1.4, 0.2]]))
    assert log.flush() == 0 and log.dropped == 1


def test_durations_and_names() -> None:
    assert parse_duration("30d") == dt.timedelta(days=30)
    assert parse_duration("1.5h") == dt.timedelta(minutes=90)
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration("soon")
    with pytest.raises(UsageError, match="invalid model name"):
        Store("/tmp").read("../etc")
