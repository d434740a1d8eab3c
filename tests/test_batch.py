"""Batch scoring of CSV, Parquet and JSON Lines files in chunks: ids, probabilities, errors and atomic output."""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

import berth
from berth.batch import default_threads, predict_file, table_format
from berth.model import LoadedModel

Iris = tuple[pd.DataFrame, pd.Series]
FORMATS = ["csv", "parquet", "jsonl"]


@pytest.fixture
def model(iris_forest_bundle: Path) -> LoadedModel:
    return berth.load(iris_forest_bundle)


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    kind = table_format(path)
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def read_table(path: Path) -> pd.DataFrame:
    kind = table_format(path)
    if kind == "csv":
        return pd.read_csv(path)
    if kind == "parquet":
        return pd.read_parquet(path)
    return pd.read_json(path, lines=True)


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("target", FORMATS)
def test_every_input_format_scores_to_every_output_format(tmp_path: Path, model: LoadedModel, iris_data: Iris,
                                                          iris_forest: RandomForestClassifier, source: str,
                                                          target: str) -> None:
    X, _ = iris_data
    rows = write_table(X, tmp_path / f"rows.{source}")
    result = predict_file(model, rows, tmp_path / f"out.{target}", chunk_size=40)
    out = read_table(tmp_path / f"out.{target}")
    assert result.rows == len(X) == len(out)
    assert list(out.columns) == ["row", "prediction"]
    assert out["row"].tolist() == list(range(len(X)))
    assert out["prediction"].tolist() == iris_forest.predict(X).tolist()


def test_the_id_column_is_written_beside_each_prediction(tmp_path: Path, model: LoadedModel,
                                                         iris_data: Iris) -> None:
    X, _ = iris_data
    frame = X.assign(flower=[f"f-{i:03d}" for i in range(len(X))])
    rows = write_table(frame, tmp_path / "rows.csv")
    predict_file(model, rows, tmp_path / "out.parquet", id_column="flower", chunk_size=64)
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["flower", "prediction"]
    assert out["flower"].tolist() == frame["flower"].tolist()


def test_ids_with_gaps_or_of_mixed_kinds_are_written(tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    """JSON Lines ids as clients send them: some missing, some numbers among text. Written as text, gaps empty."""
    X, _ = iris_data
    head = X.head(6).copy()
    head.insert(0, "key", pd.Series(["a", None, 7, "b", 8.5, None], dtype=object))
    rows = tmp_path / "rows.jsonl"
    head.to_json(rows, orient="records", lines=True)
    predict_file(model, rows, tmp_path / "out.parquet", id_column="key")
    import pyarrow.parquet as pq

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("key").to_pylist() == ["a", None, "7", "b", "8.5", None]
    assert out.num_rows == 6


def test_a_missing_id_column_is_a_usage_error(tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    X, _ = iris_data
    rows = write_table(X, tmp_path / "rows.csv")
    with pytest.raises(berth.UsageError, match="no column 'key'"):
        predict_file(model, rows, tmp_path / "out.csv", id_column="key")
    assert not (tmp_path / "out.csv").exists()


def test_probabilities_get_one_column_per_class(tmp_path: Path, model: LoadedModel, iris_data: Iris,
                                                iris_forest: RandomForestClassifier) -> None:
    X, _ = iris_data
    rows = write_table(X, tmp_path / "rows.parquet")
    result = predict_file(model, rows, tmp_path / "out.jsonl", probabilities=True, chunk_size=50)
    assert result.columns == ["row", "prediction", "proba_0", "proba_1", "proba_2"]
    out = pd.read_json(tmp_path / "out.jsonl", lines=True)
    # the forest's compiled twin computes in float32: equal within the proof's 1e-5
    np.testing.assert_allclose(out[["proba_0", "proba_1", "proba_2"]].to_numpy(), iris_forest.predict_proba(X),
                               rtol=0, atol=1e-5)


def test_probabilities_of_a_regressor_are_a_usage_error(tmp_path: Path, iris_data: Iris) -> None:
    X, _ = iris_data
    berth.save(LinearRegression().fit(X.iloc[:, :3], X.iloc[:, 3]), tmp_path / "reg", sample=X.iloc[:5, :3])
    rows = write_table(X.iloc[:, :3], tmp_path / "rows.csv")
    with pytest.raises(berth.UsageError, match="probabilities"):
        predict_file(berth.load(tmp_path / "reg"), rows, tmp_path / "out.csv", probabilities=True)


@pytest.mark.parametrize(("source", "value", "msg"), [
    ("csv", "wide", "expected a number, got string 'wide'"),
    ("jsonl", "wide", "expected a number, got string 'wide'"),
    ("parquet", np.nan, "missing value (null/NaN) is not allowed"),  # Parquet columns hold one type
])
def test_a_bad_row_in_a_later_chunk_names_its_row_and_leaves_no_output(
        tmp_path: Path, model: LoadedModel, iris_data: Iris, source: str, value: object, msg: str) -> None:
    X, _ = iris_data
    frame = X.astype(object) if isinstance(value, str) else X.copy()
    frame.loc[137, "sepal width (cm)"] = value
    rows = write_table(frame, tmp_path / f"rows.{source}")
    output = tmp_path / "out" / "scores.csv"
    with pytest.raises(berth.SignatureError) as caught:
        predict_file(model, rows, output, chunk_size=25)
    assert caught.value.details == [{"loc": [137, "sepal width (cm)"], "msg": msg}]
    assert "row 137" in caught.value.message
    assert list((tmp_path / "out").iterdir()) == []  # neither the output nor a partial file


def test_a_failure_keeps_the_previous_output_intact(tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    X, _ = iris_data
    work = tmp_path / "work"
    work.mkdir()
    output = work / "scores.csv"
    output.write_text("previous results\n")
    frame = X.copy()
    frame.loc[120, "petal length (cm)"] = np.nan
    rows = write_table(frame, work / "rows.parquet")
    with pytest.raises(berth.SignatureError, match="row 120"):
        predict_file(model, rows, output, chunk_size=30)
    assert output.read_text() == "previous results\n"
    assert sorted(p.name for p in work.iterdir()) == ["rows.parquet", "scores.csv"]


@pytest.mark.parametrize("target", FORMATS)
def test_chunked_output_equals_unchunked_output(tmp_path: Path, model: LoadedModel, iris_data: Iris,
                                                target: str) -> None:
    X, _ = iris_data
    rows = write_table(X.assign(key=range(1000, 1000 + len(X))), tmp_path / "rows.csv")
    chunked, whole = tmp_path / f"chunked.{target}", tmp_path / f"whole.{target}"
    predict_file(model, rows, chunked, id_column="key", probabilities=True, chunk_size=7)
    predict_file(model, rows, whole, id_column="key", probabilities=True)
    pd.testing.assert_frame_equal(read_table(chunked), read_table(whole))
    if target != "parquet":  # Parquet's row groups follow the chunks; the text formats are byte for byte equal
        assert chunked.read_bytes() == whole.read_bytes()


def test_progress_reports_rows_done_and_the_total_when_known(tmp_path: Path, model: LoadedModel,
                                                             iris_data: Iris) -> None:
    X, _ = iris_data
    calls: list[tuple[int, int | None]] = []
    predict_file(model, write_table(X, tmp_path / "rows.parquet"), tmp_path / "a.csv", chunk_size=60,
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(60, 150), (120, 150), (150, 150)]
    calls.clear()
    predict_file(model, write_table(X, tmp_path / "rows.csv"), tmp_path / "b.csv", chunk_size=100,
                 progress=lambda done, total: calls.append((done, total)))
    assert calls == [(100, None), (150, None)]


def test_fsspec_urls_work_for_input_and_output(model: LoadedModel, iris_data: Iris,
                                               iris_forest: RandomForestClassifier) -> None:
    X, _ = iris_data
    fs = fsspec.filesystem("memory")
    with fs.open("/berth-batch/rows.csv", "w") as handle:
        X.to_csv(handle, index=False)
    try:
        result = predict_file(model, "memory://berth-batch/rows.csv", "memory://berth-batch/out.parquet",
                              chunk_size=50)
        with fs.open("/berth-batch/out.parquet", "rb") as handle:
            out = pd.read_parquet(handle)
    finally:
        fs.rm("/berth-batch", recursive=True)
    assert result.rows == len(X)
    assert out["prediction"].tolist() == iris_forest.predict(X).tolist()


def test_unknown_extensions_and_scoring_in_place_are_usage_errors(tmp_path: Path, model: LoadedModel,
                                                                  iris_data: Iris) -> None:
    X, _ = iris_data
    rows = write_table(X, tmp_path / "rows.csv")
    with pytest.raises(berth.UsageError, match=r"\.csv, \.parquet or \.jsonl"):
        predict_file(model, rows, tmp_path / "out.xlsx")
    with pytest.raises(berth.UsageError, match="must not be the input"):
        predict_file(model, rows, rows)


# ------------------------------------------------------------------------------------------ parallel chunks


@pytest.mark.parametrize("target", FORMATS)
@pytest.mark.parametrize("source", ["csv", "parquet", "jsonl"])
def test_parallel_scoring_writes_what_one_thread_writes(tmp_path: Path, model: LoadedModel, iris_data: Iris,
                                                        source: str, target: str) -> None:
    X, _ = iris_data
    rows = write_table(X.assign(key=[f"k{i:04d}" for i in range(len(X))]), tmp_path / f"rows.{source}")
    one, four = tmp_path / f"one.{target}", tmp_path / f"four.{target}"
    predict_file(model, rows, one, id_column="key", probabilities=True, chunk_size=9, threads=1)
    predict_file(model, rows, four, id_column="key", probabilities=True, chunk_size=9, threads=4)
    pd.testing.assert_frame_equal(read_table(four), read_table(one))
    assert read_table(four)["key"].tolist() == [f"k{i:04d}" for i in range(len(X))]
    if target != "parquet":
        assert four.read_bytes() == one.read_bytes()


def test_the_first_bad_chunk_in_input_order_is_the_error_whatever_finishes_first(
        tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    X, _ = iris_data
    frame = X.astype(object)
    frame.loc[31, "petal width (cm)"] = "narrow"
    frame.loc[140, "sepal length (cm)"] = "long"
    rows = write_table(frame, tmp_path / "rows.csv")
    with pytest.raises(berth.SignatureError) as caught:
        predict_file(model, rows, tmp_path / "out.csv", chunk_size=10, threads=4)
    assert caught.value.details == [{"loc": [31, "petal width (cm)"], "msg": "expected a number, got string "
                                                                             "'narrow'"}]
    assert not (tmp_path / "out.csv").exists()


def test_a_missing_value_in_a_csv_is_named_by_the_typed_reader(tmp_path: Path, model: LoadedModel,
                                                               iris_data: Iris) -> None:
    X, _ = iris_data
    frame = X.copy()
    frame.loc[77, "sepal width (cm)"] = np.nan
    rows = write_table(frame, tmp_path / "rows.csv")
    with pytest.raises(berth.SignatureError) as caught:
        predict_file(model, rows, tmp_path / "out.csv", chunk_size=20, threads=2)
    assert caught.value.details == [{"loc": [77, "sepal width (cm)"],
                                     "msg": "missing value (null/NaN) is not allowed"}]


def test_a_compressed_csv_is_read_like_a_plain_one(tmp_path: Path, model: LoadedModel, iris_data: Iris,
                                                   iris_forest: RandomForestClassifier) -> None:
    X, _ = iris_data
    X.to_csv(tmp_path / "rows.csv.gz", index=False)
    predict_file(model, tmp_path / "rows.csv.gz", tmp_path / "out.csv", chunk_size=32)
    assert pd.read_csv(tmp_path / "out.csv")["prediction"].tolist() == iris_forest.predict(X).tolist()


def test_threads_below_one_are_a_usage_error(tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    X, _ = iris_data
    with pytest.raises(berth.UsageError, match="threads"):
        predict_file(model, write_table(X, tmp_path / "rows.csv"), tmp_path / "out.csv", threads=0)


@pytest.mark.parametrize("sizes", [[1000], [7, 7, 7], [3, 50, 1, 1, 96], [149, 1]])
def test_arrow_batches_of_any_size_become_chunks_of_the_asked_size(sizes: list[int]) -> None:
    import pyarrow as pa

    from berth.batch_io import rechunk

    values = np.arange(sum(sizes))
    starts = np.cumsum([0, *sizes])
    batches = [pa.record_batch({"x": values[a:b]}) for a, b in itertools.pairwise(starts)]
    chunks = list(rechunk(iter(batches), 40))
    assert [c.num_rows for c in chunks[:-1]] == [40] * (len(chunks) - 1) and 0 < chunks[-1].num_rows <= 40
    assert np.concatenate([c.column("x").to_numpy() for c in chunks]).tolist() == values.tolist()


def test_ordered_map_gives_input_order_when_later_items_finish_first() -> None:
    from berth.ordered_pool import ordered_map

    later_done = threading.Event()

    def work(i: int) -> int:
        if i == 0:
            assert later_done.wait(timeout=30)  # the first item finishes only after the second
        else:
            later_done.set()
        return i * i

    assert list(ordered_map(work, range(6), workers=2)) == [0, 1, 4, 9, 16, 25]


@pytest.mark.parametrize(("workers", "in_flight"), [(1, None), (2, None), (3, 3), (4, 1)])
def test_ordered_map_holds_at_most_in_flight_items(workers: int, in_flight: int | None) -> None:
    from berth.ordered_pool import ordered_map

    taken = [0]
    held: list[int] = []

    def items() -> Iterator[int]:
        for i in range(40):
            taken[0] += 1
            yield i

    consumed = 0
    for result in ordered_map(lambda i: i, items(), workers=workers, in_flight=in_flight):
        consumed += 1
        held.append(taken[0] - consumed + 1)  # taken from the stream, result not consumed before this one
        assert result == consumed - 1
    limit = in_flight if in_flight is not None else 2 * workers
    assert max(held) <= max(limit, 1) and consumed == 40


def test_ordered_map_raises_at_the_failing_items_place_after_earlier_results() -> None:
    from berth.ordered_pool import ordered_map

    def work(i: int) -> int:
        if i == 5:
            raise ValueError("item 5")
        return i

    got: list[int] = []
    with pytest.raises(ValueError, match="item 5"):
        for result in ordered_map(work, range(20), workers=3):
            got.append(result)
    assert got == [0, 1, 2, 3, 4]


class ThreadRecorder:
    """A python-flavor model that notes the threads it predicts on."""

    def __init__(self) -> None:
        self.threads: set[int] = set()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.threads.add(threading.get_ident())
        return np.zeros(len(frame))


def test_a_python_model_is_called_from_one_thread_unless_asked(tmp_path: Path, iris_data: Iris) -> None:
    X, _ = iris_data
    berth.save(ThreadRecorder(), tmp_path / "recorder", sample=X.head(5), flavor="python")
    model = berth.load(tmp_path / "recorder", trust=True)
    rows = write_table(X, tmp_path / "rows.csv")
    predict_file(model, rows, tmp_path / "out.csv", chunk_size=5)
    assert len(model.predictor.model.threads) == 1  # type: ignore[attr-defined]
    assert default_threads(model) == 1


def test_a_scikit_learn_model_gets_a_thread_per_core(model: LoadedModel) -> None:
    assert default_threads(model) == len(os.sched_getaffinity(0))


def test_an_onnx_flavor_model_gets_one_thread_its_twin_one_per_core(tmp_path: Path, iris_data: Iris,
                                                                      iris_forest: RandomForestClassifier) -> None:
    """The onnx flavor's session spreads each call over every core itself; a twin's session runs on one."""
    pytest.importorskip("skl2onnx")
    X, _ = iris_data
    berth.save(iris_forest, tmp_path / "onnx", sample=X.head(5), format="onnx", compile=False)
    berth.save(iris_forest, tmp_path / "twin", sample=X.head(5), reference=X, compile=True)
    assert default_threads(berth.load(tmp_path / "onnx")) == 1
    twin = berth.load(tmp_path / "twin")
    assert twin.compiled and default_threads(twin) == len(os.sched_getaffinity(0))


def test_an_empty_csv_is_refused_as_before(tmp_path: Path, model: LoadedModel, iris_data: Iris) -> None:
    X, _ = iris_data
    header_only = tmp_path / "header.csv"
    X.head(0).to_csv(header_only, index=False)
    with pytest.raises(berth.UsageError, match="no rows to score"):
        predict_file(model, header_only, tmp_path / "out.csv")
