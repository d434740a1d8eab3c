"""The prediction log: the record schema, a bounded in-memory queue and the background batched flusher.

Recording costs the request one object and one ``deque.append``. Nothing is converted on the hot path: the
flusher, a background task of the server, takes up to everything queued, turns it into one Arrow table per model
(vectorised across requests) in a worker thread, and appends it to the :class:`~berth.monitoring.store.Store`.
When the queue is full a record is dropped and counted (``dropped``), never the request. Labels posted to
``/feedback`` go through the same flusher: all the labels of a flush make one file per model, not one per POST.

Schema of one logged row (one input row of a request; a request of N rows gives N logged rows):

=====================  =========================  ===================================================
column                 type                       meaning
=====================  =========================  ===================================================
``time``               timestamp[us, UTC]         when the prediction was answered
``version``            string                     the served version (registry number or digest prefix)
``request_id``         string                     ``x-request-id`` of the request (sent or generated)
``row``                int32                      the row's index within its request
``latency_ms``         float64                    the request's time in the server
``feature.<name>``     float64 or string          the input value, named after the signature's column
``prediction``         float64 or string          the model's output (first output column)
``probabilities``      list<float64>              class probabilities, when the request asked for them
``coerced``            list<string>               features whose value was converted to the column type
``shadow``             bool                       a candidate's answer to a copy of the request (not sent
                                                  to the caller); absent in logs written before shadows
``error``              string                     why a shadow call, or the answering version (a 5xx), gave no
                                                  answer (its prediction and features are null)
=====================  =========================  ===================================================

Readers of what callers got (:func:`served_rows`) skip shadow and error rows; a missing column reads as
false / null.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from berth.coercion import is_frame
from berth.monitoring.store import FEATURE_PREFIX, FEEDBACK, Store
from berth.signature import ColumnSpec, Signature

log = logging.getLogger("berth.monitor")


@dataclass(slots=True)
class PendingRecord:
    """One answered request, as queued: raw and unconverted, so queuing it costs next to nothing."""

    time: float  # seconds since the epoch
    model: str
    version: str
    request_id: str
    data: Any  # the decoded request input, already validated against the signature
    predictions: np.ndarray | None  # None for a failed shadow call (see ``error``)
    probabilities: np.ndarray | None
    latency_s: float
    source: Any  # the LoadedModel (its signature and manifest)
    shadow: bool = False  # a candidate's answer to a copy of the request, not the answer the caller got
    error: str | None = None  # why a shadow call has no answer
    rows: int = 0  # input rows, for a record without predictions


class PredictionLog:
    """A bounded queue of :class:`PendingRecord` flushed in batches to a :class:`Store`."""

    def __init__(self, store: Store, *, max_queue: int = 10_000, batch_size: int = 5_000,
                 flush_interval_s: float = 2.0, on_drop: Callable[[int], None] | None = None,
                 on_write: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.dropped = 0
        self.written = 0
        self._queue: collections.deque[PendingRecord] = collections.deque()
        self._on_drop = on_drop
        self._on_write = on_write
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = threading.Lock()
        self._known_versions: set[tuple[str, str]] = set()
        self._feedback: collections.deque[tuple[str, pa.Table]] = collections.deque()
        self._feedback_rows = 0
        self.feedback_written = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def feedback_queued(self) -> int:
        return self._feedback_rows

    def offer_feedback(self, model: str, table: pa.Table) -> bool:
        """Queue validated labels of ``model`` for the next flush; False (nothing queued) when ``max_queue``
        labels already wait."""
        if self._feedback_rows + table.num_rows > self.max_queue:
            return False
        self._feedback.append((model, table))
        self._feedback_rows += table.num_rows
        if self._wake is not None and self._feedback_rows >= self.batch_size:
            self._wake.set()
        return True

    def flush_feedback(self) -> int:
        """Write the queued labels: one file per model (and day) for everything queued; returns the labels."""
        groups: dict[str, list[pa.Table]] = collections.defaultdict(list)
        while self._feedback:
            model, table = self._feedback.popleft()
            self._feedback_rows -= table.num_rows
            groups[model].append(table)
        rows = 0
        for model, tables in groups.items():
            table = pa.concat_tables(tables)
            try:
                self.store.write(model, table, kind=FEEDBACK)
            except Exception:
                log.exception("cannot write %d labels of %s", table.num_rows, model)
                continue
            rows += table.num_rows
        self.feedback_written += rows
        return rows

    def offer(self, record: PendingRecord) -> bool:
        """Queue ``record``; when the queue is full, drop it, count it and return False."""
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            if self._on_drop:
                self._on_drop(1)
            return False
        self._queue.append(record)
        if self._wake is not None and len(self._queue) >= self.batch_size:
            self._wake.set()
        return True

    def flush(self) -> int:
        """Write everything queued now (in the calling thread); returns the prediction rows written."""
        with self._flush_lock:
            if self._feedback:
                self.flush_feedback()
            rows = 0
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.batch_size))]
                rows += self._write(batch)
            return rows

    def _write(self, batch: list[PendingRecord]) -> int:
        groups: dict[str, list[PendingRecord]] = collections.defaultdict(list)
        for record in batch:
            groups[record.model].append(record)
        rows = 0
        for model, records in groups.items():
            try:
                self._remember_versions(records)
                table = records_to_table(records)
                self.store.write(model, table)
            except Exception:  # a broken write must not stop the flusher; the records are lost and counted
                log.exception("cannot write %d prediction records of %s", len(records), model)
                self.dropped += len(records)
                if self._on_drop:
                    self._on_drop(len(records))
                continue
            rows += table.num_rows
        self.written += rows
        if self._on_write and rows:
            self._on_write(rows)
        return rows

    def _remember_versions(self, records: Iterable[PendingRecord]) -> None:
        for record in records:
            key = (record.model, record.version)
            if key not in self._known_versions and record.source is not None:
                self.store.save_version(record.model, record.version, version_info(record.source, record.version))
                self._known_versions.add(key)

    # ------------------------------------------------------------------ background task

    def start(self) -> None:
        """Start the flusher on the running event loop."""
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="berth-prediction-log")

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            if self._queue or self._feedback:
                await loop.run_in_executor(None, self.flush)

    async def close(self) -> None:
        """Stop the flusher and write what is still queued (on shutdown and SIGTERM)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.get_running_loop().run_in_executor(None, self.flush)


def version_info(source: Any, version: str) -> dict[str, Any]:
    """What analysis needs of a served version: name, signature, reference statistics, metrics."""
    manifest = source.manifest
    return {"model": manifest.name, "version": version, "flavor": manifest.flavor,
            "created_at": manifest.created_at, "signature": manifest.signature.to_dict() if manifest.signature
            else None, "reference": manifest.reference, "metrics": manifest.metrics}


# --------------------------------------------------------------------------- records to Arrow


def records_to_table(records: list[PendingRecord]) -> pa.Table:
    """Queued records of one model as one Arrow table (one row per input row)."""
    signature: Signature = records[0].source.signature
    specs = signature.columns if signature.layout == "table" else ()
    columns: dict[str, list[Any]] = {spec.name: [] for spec in specs}
    coerced: list[list[str]] = []
    times: list[float] = []
    versions: list[str] = []
    ids: list[str] = []
    row_index: list[int] = []
    latencies: list[float] = []
    predictions: list[Any] = []  # arrays, or ints standing for that many missing outputs
    probabilities: list[np.ndarray | None] = []
    shadows: list[bool] = []
    errors: list[str | None] = []
    for record in records:
        n = len(record.predictions) if record.predictions is not None else record.rows
        values = raw_columns(signature, record.data, n) if specs and record.data is not None else None
        if specs and record.data is None:  # a failed request: no input kept
            values = {spec.name: [None] * n for spec in specs}
            marks: list[list[str]] = [[] for _ in range(n)]
        elif specs and values is None:  # an unusual input shape: let the signature coerce it
            from berth.coercion import coerce

            frame = coerce(signature, record.data, to="dataframe")
            values = {spec.name: frame[spec.name].tolist() for spec in specs}
            marks = [[] for _ in range(n)]
        else:
            marks = coercions(specs, values or {}, n)
        for spec in specs:
            columns[spec.name].extend(values[spec.name])  # type: ignore[index]
        coerced.extend(marks)
        times.extend([record.time] * n)
        versions.extend([record.version] * n)
        ids.extend([record.request_id] * n)
        row_index.extend(range(n))
        latencies.extend([record.latency_s * 1000] * n)
        shadows.extend([record.shadow] * n)
        errors.extend([record.error] * n)
        if record.predictions is None:
            predictions.append(n)  # n missing outputs
        else:
            output = np.asarray(record.predictions)
            predictions.append(output.reshape(n, -1)[:, 0] if output.ndim > 1 else output)
        probabilities.append(record.probabilities)
    arrays: dict[str, pa.Array] = {
        "time": pa.array((np.asarray(times) * 1e6).astype("int64"), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "version": pa.array(versions, pa.string()),
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(row_index, pa.int32()),
        "latency_ms": pa.array(latencies, pa.float64()),
    }
    for spec in specs:
        arrays[FEATURE_PREFIX + spec.name] = feature_array(spec, columns[spec.name])
    arrays["prediction"] = outputs_with_gaps(predictions)
    arrays["probabilities"] = probability_array(probabilities, [len(r.predictions) if r.predictions is not None
                                                                else r.rows for r in records])
    arrays["coerced"] = pa.array(coerced, pa.list_(pa.string()))
    arrays["shadow"] = pa.array(shadows, pa.bool_())
    arrays["error"] = pa.array(errors, pa.string())
    return pa.table(arrays)


def outputs_with_gaps(parts: list[Any]) -> pa.Array:
    """The outputs of every record, in order; an int in ``parts`` stands for that many missing outputs."""
    present = [p for p in parts if not isinstance(p, int)]
    values = output_array(np.concatenate(present) if present else np.array([]))
    if len(present) == len(parts):
        return values
    pieces, start = [], 0
    for part in parts:
        if isinstance(part, int):
            pieces.append(pa.nulls(part, values.type))
        else:
            pieces.append(values.slice(start, len(part)))
            start += len(part)
    return pa.concat_arrays(pieces) if pieces else values


def served_rows(table: pa.Table) -> pa.Table:
    """The rows of answers callers got: without shadow rows and failed requests (a log written before these
    columns existed has neither)."""
    if table.num_rows == 0:
        return table
    import pyarrow.compute as pc

    keep = None
    if "shadow" in table.column_names:
        keep = pc.invert(pc.fill_null(table["shadow"], False))
    if "error" in table.column_names:
        answered = pc.is_null(table["error"])
        keep = answered if keep is None else pc.and_(keep, answered)
    return table if keep is None else table.filter(keep)


def raw_columns(signature: Signature, data: Any, rows: int) -> dict[str, list[Any]] | None:
    """The request's values per column, as sent; None for a shape this does not read (coerce takes over)."""
    names = signature.names
    width = len(names)
    if is_frame(data):
        data = {str(k): data[k].tolist() for k in data.columns}
    if isinstance(data, np.ndarray):
        data = data.reshape(1, -1).tolist() if data.ndim == 1 and width > 1 else data.tolist()
    if isinstance(data, dict):
        if data and all(not isinstance(v, list | tuple | np.ndarray) for v in data.values()):
            data = {k: [v] for k, v in data.items()}
        try:
            result = {name: list(data[name]) for name in names}
        except (KeyError, TypeError):
            return None
    elif isinstance(data, list | tuple) and data:
        first = data[0]
        if isinstance(first, dict):
            result = {name: [record.get(name) for record in data] for name in names}
        elif isinstance(first, list | tuple):
            if any(len(row) != width for row in data):
                return None
            result = {name: [row[i] for row in data] for i, name in enumerate(names)}
        elif width == 1:
            result = {names[0]: list(data)}
        elif len(data) == width:
            result = {name: [data[i]] for i, name in enumerate(names)}
        else:
            return None
    else:
        return None
    return result if all(len(v) == rows for v in result.values()) else None


def _needs_coercion(spec: ColumnSpec) -> Callable[[Any], bool]:
    if spec.dtype.startswith("float"):
        return lambda v: v is not None and type(v) is not float and isinstance(v, bool | int)
    if spec.is_integer:
        return lambda v: isinstance(v, bool | float)
    if spec.dtype == "bool":
        return lambda v: v is not None and not isinstance(v, bool | np.bool_)
    if spec.dtype == "string":
        return lambda v: v is not None and not isinstance(v, str)
    return lambda v: False


def coercions(specs: Iterable[ColumnSpec], values: dict[str, list[Any]], rows: int) -> list[list[str]]:
    """Per row, the features whose value had to be converted to the column's type (e.g. 5 into a float)."""
    marks: list[list[str]] = [[] for _ in range(rows)]
    for spec in specs:
        test = _needs_coercion(spec)
        for i, value in enumerate(values.get(spec.name, ())):
            if test(value):
                marks[i].append(spec.name)
    return marks


def feature_array(spec: ColumnSpec, values: list[Any]) -> pa.Array:
    if spec.is_numeric or spec.dtype == "bool":
        return pa.array(numeric_values(values), pa.float64(), from_pandas=True)
    return pa.array([None if v is None or (isinstance(v, float) and v != v) else str(v) for v in values],
                    pa.string())


def numeric_values(values: list[Any]) -> np.ndarray:
    """A numeric column's values as float64, anything that is not a number as NaN.

    JSON requests give plain floats, small ints and nulls: those convert directly (exactly as pandas would);
    anything else (strings of numbers, bools, numpy scalars, huge ints) goes through ``pandas.to_numeric``,
    imported here, on the log writer's thread, not before the server is ready.
    """
    if all(v is None or type(v) is float or (type(v) is int and -EXACT_INT <= v <= EXACT_INT) for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    import pandas as pd

    series = pd.to_numeric(pd.Series(values, dtype="object"), errors="coerce")
    return np.asarray(series.to_numpy(dtype="float64", na_value=np.nan))


EXACT_INT = 2**53  # integers up to this size are exactly a float64


def output_array(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "biuf":
        return pa.array(values.astype("float64"), pa.float64())
    return pa.array([None if v is None else str(v) for v in values.tolist()], pa.string())


def probability_array(parts: list[np.ndarray | None], rows: list[int]) -> pa.Array:
    values: list[Any] = []
    for part, n in zip(parts, rows, strict=True):
        if part is None:
            values.extend([None] * n)
        else:
            values.extend(np.asarray(part, dtype="float64").reshape(n, -1).tolist())
    return pa.array(values, pa.list_(pa.float64()))


def now() -> float:
    return dt.datetime.now(dt.UTC).timestamp()
