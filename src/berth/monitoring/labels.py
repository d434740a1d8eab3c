"""Labels matched to the predictions they judge: one SQL hash join in DuckDB over the log's pyarrow dataset.

The labels (latest per request id and row) are the join's build side; the log's files stream through it, only
the columns the metrics need read (DuckDB pushes the projection and the filters into pyarrow's scan, so every
store berth reads, local or fsspec, works the same). Measured at 10,000,000 logged rows and 1,000,000 labels
(bench/results/monitoring_scale.md): an ``isin`` filter per file, which rebuilt a hash set of every labelled
id for every file, took 11.9 s of a 66 s report; pyarrow's Acero hash join, which carries no list column (the
probabilities had to be sliced into columns for all 10,000,000 rows first), 2.5-10 s; DuckDB 1.5-4 s, with
less memory, in the same runs.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from berth.monitoring.store import Store, utc

KEYS = ["request_id", "row"]
SETTINGS: dict[str, str | bool | int | float | list[str]] = {
    "threads": max(1, min(4, os.cpu_count() or 1)),
    "memory_limit": "512MB",  # DuckDB's own buffers (the join's hash table); a larger join spills to disk
    "temp_directory": os.path.join(tempfile.gettempdir(), "berth-duckdb"),  # not the working directory
    "preserve_insertion_order": False,  # the rows are sorted by time afterwards
    "autoinstall_known_extensions": False,  # nothing is fetched: files come through berth's own filesystem
    "autoload_known_extensions": False,
}
POSITION = "label.position"  # the label's row in ``labels``: which labels matched nothing


@dataclass
class Matched:
    """The labelled predictions of a window, and the labels that match no logged prediction at all."""

    rows: pa.Table  # time, prediction, label (oldest first)
    probabilities: np.ndarray | None  # rows x classes, aligned with ``rows``; None unless every row has them
    unmatched: int
    unmatched_examples: list[str]


def match_labels(store: Store, model: str, labels: pa.Table, since: dt.datetime | None, until: dt.datetime | None,
                 version: str | None, width: int) -> Matched:
    """Join ``labels`` (request_id, row, label) to the answers logged before ``until`` (any time: a label
    matches a prediction of any age), then keep the window's (``since`` on). ``width``: how many class
    probabilities to carry (0: none)."""
    joined = store.retrying(lambda: _join(store, model, labels, until, version, width))
    matched = np.zeros(labels.num_rows, bool)
    matched[joined[POSITION].to_numpy()] = True
    missing = labels["request_id"].take(np.flatnonzero(~matched))
    examples = sorted({str(v) for v in pc.unique(missing).to_pylist()})[:5] if len(missing) else []
    if since is not None and joined.num_rows:
        joined = joined.filter(pc.greater_equal(joined["time"], pa.scalar(utc(since), joined.schema.field(
            "time").type)))
    if joined.num_rows:
        joined = joined.sort_by([("time", "ascending"), (POSITION, "ascending")])  # the join's order is any
    rows = joined.select([c for c in joined.column_names if c not in ("probabilities", POSITION)])
    return Matched(rows, probability_matrix(joined), len(missing), examples)


def _join(store: Store, model: str, labels: pa.Table, until: dt.datetime | None, version: str | None,
          width: int) -> pa.Table:
    dataset, _ = store.window(model, None, until, version=version, served_only=True)
    if dataset is None or not set(KEYS) <= set(dataset.schema.names):
        return _empty()
    schema = dataset.schema
    where: list[str] = ["TRUE"]
    parameters: list[Any] = []
    if until is not None:
        where.append("p.time < ?")
        parameters.append(utc(until))
    if version is not None:
        where.append("p.version = ?")
        parameters.append(version)
    if "shadow" in schema.names:  # the answers callers got, as served_rows keeps them
        where.append("p.shadow IS NOT TRUE")
    if "error" in schema.names:
        where.append("p.error IS NULL")
    carried = [name for name in ("time", "prediction") if name in schema.names]
    if width and "probabilities" in schema.names and pa.types.is_list(schema.field("probabilities").type):
        carried.append("probabilities")
    build = labels.select([*KEYS, "label"]).append_column(POSITION, pa.array(np.arange(labels.num_rows)))
    query = (f"SELECT {', '.join(f'p.{quote(n)}' for n in carried)}, l.label, l.{quote(POSITION)} "
             f"FROM log AS p JOIN labels AS l ON p.request_id = l.request_id AND p.{quote('row')} = l.{quote('row')} "
             f"WHERE {' AND '.join(where)}")
    with duckdb.connect(config=SETTINGS) as connection:
        files = dataset.files
        if store.remote:  # DuckDB reads the store's files through the same fsspec filesystem berth uses
            connection.register_filesystem(store.fs)
            files = [f"{store.fs.protocol[0] if isinstance(store.fs.protocol, tuple) else store.fs.protocol}://{f}"
                     for f in files]
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
        connection.execute(f"CREATE VIEW log AS SELECT * FROM read_parquet([{listed}], union_by_name = true)")
        connection.register("labels", build)
        joined = connection.sql(query, params=parameters).to_arrow_table()
    # DuckDB labels timestamps with its TimeZone setting, the machine's zone (and changing that setting needs its
    # ICU extension, which berth does not load): the same instants, labelled UTC as the rest of the report
    if "time" in joined.column_names:
        where = joined.column_names.index("time")
        joined = joined.set_column(where, "time", joined.column("time").cast(pa.timestamp("us", tz="UTC")))
    return joined


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _empty() -> pa.Table:
    return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC")), "prediction": pa.array([], pa.float64()),
                     "label": pa.array([], pa.string()), POSITION: pa.array([], pa.int64())})


def probability_matrix(joined: pa.Table) -> np.ndarray | None:
    """The class probabilities as a matrix: None when a row has none or rows have different numbers."""
    if "probabilities" not in joined.column_names or joined.num_rows == 0:
        return None
    column = joined["probabilities"]
    if column.null_count:
        return None
    lengths = pc.list_value_length(column)
    bounds = pc.min_max(lengths).as_py()
    width = bounds["min"]
    if width != bounds["max"] or not width:
        return None
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype("float64")
    return values.reshape(joined.num_rows, width)
