"""Labels joined to predictions by one hash join (berth.monitoring.labels) give what a plain pandas merge of the
logged answers and the latest labels gives: the same rows, metrics and unmatched labels."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from berth.model import LoadedModel
from berth.monitoring.feedback import feedback_table
from berth.monitoring.labels import match_labels, probability_matrix
from berth.monitoring.log import served_rows
from berth.monitoring.report import labelled_performance
from berth.monitoring.scoring import performance
from berth.monitoring.store import FEEDBACK, Store
from tests.monitoring.conftest import log_rows, reference_rows, true_labels


def expected(store: Store, since: dt.datetime) -> tuple[pd.DataFrame, int]:
    """The former path: every answer in pandas, labels deduplicated by pandas, merged."""
    logged = served_rows(store.read("iris", columns=["time", "request_id", "row", "prediction", "probabilities",
                                                     "shadow", "error"])).to_pandas()
    labels = store.read("iris", kind=FEEDBACK).to_pandas().sort_values("time", kind="stable")
    labels = labels.drop_duplicates(["request_id", "row"], keep="last")
    known = logged[["request_id", "row"]].drop_duplicates()
    unmatched = int((labels.merge(known, how="left", indicator=True)["_merge"] == "left_only").sum())
    joined = logged[logged["time"] >= pd.Timestamp(since)].merge(labels[["request_id", "row", "label"]])
    return joined.sort_values("time", kind="stable").reset_index(drop=True), unmatched


def test_the_join_gives_what_a_pandas_merge_gives(store: Store, loaded: LoadedModel) -> None:
    now = time.time()
    old_rows, new_rows = reference_rows(80, seed=11), reference_rows(120, seed=12)
    old = log_rows(store, loaded, old_rows, start=now - 7200, prefix="old")
    new = log_rows(store, loaded, new_rows, start=now - 600, prefix="new")
    rng = np.random.default_rng(3)
    truth = true_labels(new_rows)
    first = [{"request_id": i, "label": (c + 1) % 3} for i, c in zip(new[:60], truth[:60], strict=True)]
    second = [{"request_id": i, "label": c} for i, c in zip(new, truth, strict=True) if rng.random() < 0.8]
    second += [{"request_id": i, "label": 0} for i in old[:30]]  # before the window: matched, not counted
    second += [{"request_id": "nobody", "label": 1}, {"request_id": new[0], "row": 3, "label": 2}]
    received = dt.datetime.now(dt.UTC)
    store.write("iris", feedback_table(first, received - dt.timedelta(seconds=5)), kind=FEEDBACK)
    store.write("iris", feedback_table(second[: len(second) // 2], received), kind=FEEDBACK)
    store.write("iris", feedback_table(second[len(second) // 2:], received), kind=FEEDBACK)  # same time
    since = dt.datetime.fromtimestamp(now - 1200, dt.UTC)
    want, unmatched = expected(store, since)

    labels = store.feedback("iris")
    matched = match_labels(store, "iris", labels.select(["request_id", "row", "label"]), since, None, None, 3)
    assert matched.unmatched == unmatched == 2 and matched.unmatched_examples == ["new0", "nobody"]
    got = matched.rows.to_pandas()
    assert len(got) == len(want) > 60
    assert got["label"].tolist() == want["label"].tolist()
    assert got["prediction"].tolist() == want["prediction"].tolist()
    assert np.array_equal(matched.probabilities, np.array(want["probabilities"].tolist()))

    classes = [0, 1, 2]
    report = labelled_performance(store, "iris", since, None, None, True, classes)
    former = performance(want, True, classes)
    assert report["labelled"] == former["labelled"] == len(want)
    assert report["overall"] == pytest.approx(former["overall"])
    assert [b["start"] for b in report["buckets"]] == [b["start"] for b in former["buckets"]]


def test_latest_label_wins_and_later_files_win_ties(store: Store) -> None:
    when = dt.datetime.now(dt.UTC)
    store.write("iris", feedback_table([{"request_id": "a", "label": 1}, {"request_id": "b", "label": 1}], when),
                kind=FEEDBACK)
    store.write("iris", feedback_table([{"request_id": "a", "label": 2}], when - dt.timedelta(seconds=1)),
                kind=FEEDBACK)
    store.write("iris", feedback_table([{"request_id": "b", "label": 3}], when), kind=FEEDBACK)
    labels = store.feedback("iris").to_pandas()
    assert dict(zip(labels["request_id"], labels["label"], strict=True)) == {"a": "1", "b": "3"}
    assert labels["time"].is_monotonic_increasing


def test_probabilities_of_different_lengths_or_missing_give_no_matrix() -> None:
    def joined(rows: list[list[float] | None]) -> pa.Table:
        return pa.table({"probabilities": pa.array(rows, pa.list_(pa.float64()))})

    assert probability_matrix(joined([[0.1, 0.9], [0.8, 0.2]])).tolist() == [[0.1, 0.9], [0.8, 0.2]]
    assert probability_matrix(joined([[0.1, 0.9], [0.2, 0.3, 0.5]])) is None
    assert probability_matrix(joined([[0.1, 0.9], None])) is None
    assert probability_matrix(joined([[], []])) is None


def test_joined_times_are_utc_whatever_the_machines_zone(store: Store, loaded: LoadedModel,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """DuckDB answers timestamps in its TimeZone setting, which defaults to the machine's: the join pins UTC, so
    labelled buckets start on UTC hours like the rest of the report (and no DST hour can break their flooring)."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        ids = log_rows(store, loaded, reference_rows(5, seed=2), start=time.time() - 60, prefix="tz")
        store.write("iris", feedback_table([{"request_id": i, "label": 0} for i in ids], dt.datetime.now(dt.UTC)),
                    kind=FEEDBACK)
        labels = store.feedback("iris").select(["request_id", "row", "label"])
        matched = match_labels(store, "iris", labels, None, None, None, 3)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert matched.rows.num_rows == 5
    assert matched.rows.schema.field("time").type == pa.timestamp("us", tz="UTC")
