"""Labels matched to the predictions they judge: one hash join over the log, built on the labels once.

The labels (latest per request id and row) are the join's build side; the log's files stream through it with
only the columns the metrics need (pyarrow's Acero engine, its own threads). Filtering the log with an ``isin``
per file rebuilt a hash set of every labelled id for every file: 11.9 s of a 66 s report over 10,000,000 rows
(bench/results/monitoring_scale.md). Acero joins no list columns, so class probabilities travel as one column
per class (``probabilities.0`` ...) beside the list's length, and come back as a matrix.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.acero as acero
import pyarrow.compute as pc

from berth.monitoring.store import Store, utc

KEYS = ["request_id", "row"]
READ_AHEAD = 2  # files and batches the scan reads ahead (pyarrow's defaults, 4 and 16, held ~300 MB more)
LENGTH = "probabilities.length"
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
        joined = joined.sort_by([("time", "ascending")])
    rows = joined.select([c for c in joined.column_names if not c.startswith("probabilities.") and c != POSITION])
    return Matched(rows, probability_matrix(joined), len(missing), examples)


def _join(store: Store, model: str, labels: pa.Table, until: dt.datetime | None, version: str | None,
          width: int) -> pa.Table:
    dataset, condition = store.window(model, None, until, version=version, served_only=True)
    if dataset is None or not set(KEYS) <= set(dataset.schema.names):
        return _empty()
    schema = dataset.schema
    build = labels.select([*KEYS, "label"]).cast(pa.schema([schema.field("request_id"), schema.field("row"),
                                                            pa.field("label", labels.schema.field("label").type)]))
    build = build.append_column(POSITION, pa.array(np.arange(build.num_rows, dtype=np.int64)))
    outputs: dict[str, Any] = {name: pc.field(name) for name in ("time", *KEYS, "prediction")
                               if name in schema.names}
    probabilities = schema.field("probabilities").type if "probabilities" in schema.names else None
    if width and probabilities is not None and pa.types.is_list(probabilities):
        fixed = pc.list_slice(pc.field("probabilities"), 0, width, return_fixed_size_list=True)
        outputs[LENGTH] = pc.list_value_length(pc.field("probabilities"))
        outputs.update({f"probabilities.{i}": pc.list_element(fixed, i) for i in range(width)})
    read = [n for n in ("time", *KEYS, "prediction", "probabilities", "version", "shadow", "error")
            if n in schema.names]  # what the outputs and the window's condition use
    scan = acero.Declaration("scan", acero.ScanNodeOptions(dataset, columns=read, filter=condition,
                                                           fragment_readahead=READ_AHEAD, batch_readahead=READ_AHEAD))
    steps = [scan]
    if condition is not None:
        steps.append(acero.Declaration("filter", acero.FilterNodeOptions(condition)))
    steps.append(acero.Declaration("project", acero.ProjectNodeOptions(list(outputs.values()), list(outputs))))
    log = acero.Declaration.from_sequence(steps)
    right = acero.Declaration("table_source", acero.TableSourceNodeOptions(build))
    join = acero.Declaration("hashjoin", acero.HashJoinNodeOptions(
        "inner", left_keys=KEYS, right_keys=KEYS, left_output=[n for n in outputs if n not in KEYS],
        right_output=["label", POSITION]),
        inputs=[log, right])
    return join.to_table(use_threads=True)


def _empty() -> pa.Table:
    return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC")), "prediction": pa.array([], pa.float64()),
                     "label": pa.array([], pa.string()), POSITION: pa.array([], pa.int64())})


def probability_matrix(joined: pa.Table) -> np.ndarray | None:
    """The class probabilities as a matrix: None when a row has none or rows have different numbers."""
    if LENGTH not in joined.column_names or joined.num_rows == 0:
        return None
    lengths = joined[LENGTH]
    if lengths.null_count:
        return None
    bounds = pc.min_max(lengths).as_py()
    width = bounds["min"]
    if width != bounds["max"] or not width or f"probabilities.{width - 1}" not in joined.column_names:
        return None
    return np.column_stack([joined[f"probabilities.{i}"].to_numpy(zero_copy_only=False).astype("float64")
                            for i in range(width)])
