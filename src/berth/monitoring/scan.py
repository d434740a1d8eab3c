"""Reports over large logs without holding them: one streaming pass over the window's Parquet files.

Record batches (about 130,000 rows, only the columns a report needs) go through accumulators that keep counts,
never rows: a numeric feature's values as counts at evaluation points (the reference's 101 percentiles, each
gap cut in ``GRID_STEPS``) and over the reference histogram's bins, per time bucket; a categorical feature's
values as counts per category and bucket; latency as a log-spaced histogram per traffic bucket. Memory is
bounded by the number of buckets and categories, not by the rows; the drift tests read the counts
(:class:`berth.monitoring.drift.Counted`). Numbers match the in-memory path closely: KS is evaluated at 501
points instead of at every value (its statistic can only come out slightly smaller), latency quantiles are
read from bins 2 % wide. The labelled rows (a fraction) are still joined in memory.

bench/monitoring.py measured the choice: pyarrow's scanner and NumPy's ``bincount`` over 10,000,000 rows beat
materialising them in pandas by a wide margin in time and memory (bench/results/monitoring.md).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from berth.monitoring.drift import DISCRETE_VALUES, Counted
from berth.monitoring.locate import Locator
from berth.reference import OTHER

GRID_STEPS = 5
LATENCY_EDGES = np.geomspace(1e-3, 1e6, 1200)  # ms; consecutive edges 1.7 % apart
LATENCY_PLACE = Locator(np.log10(LATENCY_EDGES), "right")  # log-spaced edges: evenly spaced logarithms
Progress = Callable[[int, int], None]
READ_AHEAD = 2  # files read while the counts run


def grid_of(stats: dict[str, Any]) -> np.ndarray:
    """Evaluation points: the percentiles, and GRID_STEPS - 1 points in each gap between two of them."""
    percentiles = np.asarray(stats["percentiles"], dtype="float64")
    steps = np.linspace(0.0, 1.0, GRID_STEPS, endpoint=False)
    inner = (percentiles[:-1, None] + np.diff(percentiles)[:, None] * steps[None, :]).ravel()
    return np.unique(np.concatenate([inner, percentiles[-1:]]))


class NumericCounts:
    def __init__(self, stats: dict[str, Any], buckets: int) -> None:
        self.grid = grid_of(stats)
        self.inner = np.asarray(stats["histogram"]["edges"], dtype="float64")[1:-1]
        self.shape = (buckets, len(self.grid) + 1)
        self.cells = np.zeros(self.shape, np.int64)  # bucket, k: values in (grid[k-1], grid[k]]
        self.equal = np.zeros((buckets, len(self.grid)), np.int64)
        self.bins = np.zeros((buckets, len(self.inner) + 1), np.int64)
        self.missing = 0
        self.distinct: set[float] = set()
        self.low, self.high = np.inf, -np.inf
        # values equal to an evaluation point matter where the reference has point masses (repeated
        # percentiles); elsewhere they are rare and counting them would cost a pass over every value
        self.ties = len(np.unique(stats["percentiles"])) < len(stats["percentiles"])
        self.place = Locator(self.grid, "left")
        self.place_bin = Locator(self.inner, "right")

    def add(self, values: np.ndarray, bucket: np.ndarray) -> None:
        finite = np.isfinite(values)
        self.missing += int(len(values) - finite.sum())
        v, b = values[finite], bucket[finite]
        if not len(v):
            return
        buckets, width = self.shape
        index = self.place(v)
        self.cells += np.bincount(b * width + index, minlength=buckets * width).reshape(self.shape)
        if self.ties:
            exact = index < len(self.grid)
            exact[exact] = self.grid[index[exact]] == v[exact]
            self.equal += np.bincount(b[exact] * len(self.grid) + index[exact],
                                      minlength=self.equal.size).reshape(self.equal.shape)
        bins = self.place_bin(v)
        self.bins += np.bincount(b * self.bins.shape[1] + bins, minlength=self.bins.size).reshape(self.bins.shape)
        if len(self.distinct) <= DISCRETE_VALUES:
            self.count_distinct(v)
        self.low, self.high = min(self.low, float(v.min())), max(self.high, float(v.max()))

    def count_distinct(self, v: np.ndarray) -> None:
        """Distinct values, up to DISCRETE_VALUES + 1: only values not seen yet are sorted (a feature of a few
        values, such as a class prediction, costs one comparison per known value, not a sort of every batch)."""
        self.distinct.update(np.unique(v[:4096]).tolist())
        if len(self.distinct) > DISCRETE_VALUES or len(v) <= 4096:
            return
        new = v[~np.isin(v, np.fromiter(self.distinct, dtype="float64", count=len(self.distinct)))]
        if len(new):
            self.distinct.update(np.unique(new).tolist())

    def counted(self, bucket: int | None = None) -> Counted:
        cells = self.cells.sum(axis=0) if bucket is None else self.cells[bucket]
        equal = self.equal.sum(axis=0) if bucket is None else self.equal[bucket]
        bins = self.bins.sum(axis=0) if bucket is None else self.bins[bucket]
        at_or_below = np.cumsum(cells)[: len(self.grid)]
        return Counted(int(cells.sum()), self.grid, at_or_below, at_or_below - equal, bins,
                       min(len(self.distinct), DISCRETE_VALUES + 1))

    def quality(self, stats: dict[str, Any], rows: int, coerced: int) -> dict[str, Any]:
        total = self.counted()
        below_min = int(total.below[0]) if total.below is not None and len(total.below) else 0
        above_max = total.n - int(total.at_or_below[-1]) if total.at_or_below is not None else 0
        outside = below_min + above_max
        return quality_entry("numeric", rows, stats, self.missing, coerced, out_of_range=outside,
                             out_of_range_share=share(outside, rows), range=[stats.get("min"), stats.get("max")],
                             current_range=[self.low, self.high] if total.n else None)


class CategoryCounts:
    def __init__(self, buckets: int) -> None:
        self.buckets = buckets
        self.codes: dict[str, int] = {}
        self.counts = np.zeros((buckets, 16), np.int64)
        self.missing = 0

    def add(self, column: pa.ChunkedArray | pa.Array, bucket: np.ndarray) -> None:
        encoded = pc.dictionary_encode(column.cast(pa.string()))
        chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
        offset = 0
        for chunk in chunks:
            size = len(chunk)
            names = chunk.dictionary.to_pylist()
            mapping = np.array([self.codes.setdefault(str(name), len(self.codes)) for name in names] or [0],
                               dtype=np.int64)
            indices = chunk.indices.to_numpy(zero_copy_only=False)
            valid = ~pd.isna(indices) if chunk.null_count else np.ones(size, bool)
            self.missing += int(size - valid.sum())
            codes = mapping[np.asarray(indices[valid], dtype=np.int64)]
            if len(self.codes) > self.counts.shape[1]:
                grown = np.zeros((self.buckets, max(len(self.codes), 2 * self.counts.shape[1])), np.int64)
                grown[:, : self.counts.shape[1]] = self.counts
                self.counts = grown
            b = bucket[offset:offset + size][valid]
            width = self.counts.shape[1]
            self.counts += np.bincount(b * width + codes, minlength=self.counts.size).reshape(self.counts.shape)
            offset += size

    def counted(self, bucket: int | None = None) -> Counted:
        counts = self.counts.sum(axis=0) if bucket is None else self.counts[bucket]
        names = {name: int(counts[code]) for name, code in self.codes.items() if counts[code]}
        return Counted(int(counts.sum()), categories=names)

    def quality(self, stats: dict[str, Any], rows: int, coerced: int) -> dict[str, Any]:
        frequencies = stats.get("frequencies", {})
        seen = self.counted().categories or {}
        unseen = {k: v for k, v in seen.items() if k not in frequencies} if OTHER not in frequencies else {}
        count = sum(unseen.values())
        return quality_entry("categorical", rows, stats, self.missing, coerced, unseen=count,
                             unseen_share=share(count, rows), unseen_values=sorted(unseen)[:20])


def quality_entry(kind: str, rows: int, stats: dict[str, Any], missing: int, coerced: int,
                  **specific: Any) -> dict[str, Any]:
    return {"type": kind, "count": rows, **specific, "missing": missing, "missing_share": share(missing, rows),
            "reference_missing_share": share(stats.get("missing", 0), stats.get("count") or 0),
            "coerced": coerced, "coerced_share": share(coerced, rows)}


def share(part: float, whole: float) -> float:
    return float(part) / whole if whole else 0.0


class Traffic:
    def __init__(self, buckets: int) -> None:
        self.rows = np.zeros(buckets, np.int64)
        self.latency = np.zeros((buckets, len(LATENCY_EDGES) + 1), np.int64)

    def add(self, latency: np.ndarray, bucket: np.ndarray) -> None:
        self.rows += np.bincount(bucket, minlength=len(self.rows))
        index = LATENCY_PLACE(np.log10(np.maximum(np.nan_to_num(latency), 1e-300)))
        width = self.latency.shape[1]
        self.latency += np.bincount(bucket * width + index, minlength=self.latency.size).reshape(self.latency.shape)

    @staticmethod
    def quantile(counts: np.ndarray, q: float) -> float:
        total = counts.sum()
        if not total:
            return 0.0
        index = int(np.searchsorted(np.cumsum(counts), q * total, side="left"))
        edges = np.concatenate([[0.0], LATENCY_EDGES, [LATENCY_EDGES[-1]]])
        return float(np.sqrt(max(edges[index], 1e-6) * max(edges[index + 1], 1e-6)))  # the bin's middle


class Scan:
    """What one pass over the window's rows leaves: counts per feature, prediction, bucket and latency."""

    def __init__(self, reference: dict[str, Any], predictions: dict[str, Any] | None, prediction_type: str,
                 first: int, last: int, timeline_us: int, traffic_us: int) -> None:
        self.first, self.last = first, last
        self.timeline_us, self.traffic_us = timeline_us, traffic_us
        self.timeline_origin = first // timeline_us * timeline_us
        self.traffic_origin = first // traffic_us * traffic_us
        self.timeline_buckets = int((last - self.timeline_origin) // timeline_us) + 1
        self.traffic = Traffic(int((last - self.traffic_origin) // traffic_us) + 1)
        self.features: dict[str, NumericCounts | CategoryCounts] = {}
        for name, stats in reference.get("features", {}).items():
            self.features[name] = NumericCounts(stats, self.timeline_buckets) if stats.get("type") == "numeric" \
                and "percentiles" in stats else CategoryCounts(self.timeline_buckets)
        self.prediction: NumericCounts | CategoryCounts | None = None
        if predictions and predictions.get("type") == "numeric" and "percentiles" in predictions \
                and prediction_type != "string":
            self.prediction = NumericCounts(predictions, self.timeline_buckets)
        elif predictions:
            self.prediction = CategoryCounts(self.timeline_buckets)
        self.rows = 0
        self.pool = ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="berth-scan")
        self.versions: set[str] = set()
        self.coerced: dict[str, int] = {}

    def add(self, batch: pa.RecordBatch, prefix: str) -> None:
        times = batch.column("time").cast(pa.int64()).to_numpy()
        bucket = ((times - self.timeline_origin) // self.timeline_us).astype(np.int64)
        np.clip(bucket, 0, self.timeline_buckets - 1, out=bucket)
        traffic_bucket = np.clip((times - self.traffic_origin) // self.traffic_us, 0, len(self.traffic.rows) - 1)
        names = batch.schema.names
        latency = batch.column("latency_ms").to_numpy(zero_copy_only=False) if "latency_ms" in names \
            else np.zeros(len(times))
        self.traffic.add(np.asarray(latency, dtype="float64"), traffic_bucket.astype(np.int64))
        jobs = [(counts, batch.column(prefix + name)) for name, counts in self.features.items()
                if prefix + name in names]
        if self.prediction is not None and "prediction" in names:
            jobs.append((self.prediction, batch.column("prediction")))
        # NumPy's searchsorted and bincount release the GIL: the features of a batch count in parallel
        list(self.pool.map(lambda job: self._feed(job[0], job[1], bucket), jobs))
        if "version" in names:
            self.versions.update(pc.unique(batch.column("version")).to_pylist())
        if "coerced" in names:
            flat = pc.list_flatten(batch.column("coerced"))
            if len(flat):
                for item in pc.value_counts(flat).to_pylist():
                    self.coerced[str(item["values"])] = self.coerced.get(str(item["values"]), 0) + int(item["counts"])
        self.rows += len(times)

    @staticmethod
    def _feed(counts: NumericCounts | CategoryCounts, column: pa.Array, bucket: np.ndarray) -> None:
        if isinstance(counts, NumericCounts):
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = pc.cast(column, pa.float64(), safe=False)
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            counts.add(np.asarray(values, dtype="float64"), bucket)
        else:
            counts.add(column, bucket)

    def bucket_starts(self) -> list[tuple[int, str]]:
        """The non-empty timeline buckets: (index, ISO start)."""
        filled = np.zeros(self.timeline_buckets, bool)
        for counts in [*self.features.values(), *([self.prediction] if self.prediction is not None else [])]:
            table = counts.cells if isinstance(counts, NumericCounts) else counts.counts
            filled |= table.sum(axis=1) > 0
        return [(int(i), dt.datetime.fromtimestamp((self.timeline_origin + int(i) * self.timeline_us) / 1e6,
                                                   dt.UTC).isoformat()) for i in np.flatnonzero(filled)]

    def traffic_report(self, freq: str) -> dict[str, Any]:
        total = self.traffic.latency.sum(axis=0)
        buckets = []
        for i in np.flatnonzero(self.traffic.rows):
            counts = self.traffic.latency[i]
            start = dt.datetime.fromtimestamp((self.traffic_origin + int(i) * self.traffic_us) / 1e6, dt.UTC)
            buckets.append({"start": start.isoformat(), "rows": float(self.traffic.rows[i]),
                            **{k: self.traffic.quantile(counts, q) for k, q in (("p50", 0.5), ("p95", 0.95),
                                                                                ("p99", 0.99))}})
        return {"bucket": freq, "latency_ms": {k: self.traffic.quantile(total, q) for k, q in
                                               (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}, "buckets": buckets}


def time_range(dataset: ds.Dataset, condition: Any) -> tuple[int, int, int]:
    """(first, last, rows) of the window, in microseconds since the epoch, from the time column alone."""
    first, last, rows = None, None, 0
    for batch in dataset.to_batches(columns=["time"], filter=condition):
        if batch.num_rows == 0:
            continue
        values = batch.column(0).cast(pa.int64())
        bounds = pc.min_max(values).as_py()
        first = bounds["min"] if first is None else min(first, bounds["min"])
        last = bounds["max"] if last is None else max(last, bounds["max"])
        rows += batch.num_rows
    return int(first or 0), int(last or 0), rows


def scan(dataset: ds.Dataset, condition: Any, columns: list[str], reference: dict[str, Any], *,
         first: int, last: int, timeline_freq: str, traffic_freq: str, total: int, prefix: str,
         progress: Progress | None = None) -> Scan:
    predictions = reference.get("predictions")
    schema = dataset.schema
    prediction_type = "string" if "prediction" in schema.names and pa.types.is_string(
        schema.field("prediction").type) else "number"
    result = Scan(reference, predictions, prediction_type, first, last,
                  int(pd.Timedelta(timeline_freq).value // 1000), int(pd.Timedelta(traffic_freq).value // 1000))
    wanted = [c for c in columns if c in schema.names]
    try:
        for table in fragments(dataset, wanted, condition):
            for batch in table.to_batches(max_chunksize=262_144):
                if batch.num_rows:
                    result.add(batch, prefix)
            if progress is not None:
                progress(result.rows, total)
    finally:
        result.pool.shutdown()
    return result


def fragments(dataset: ds.Dataset, columns: list[str], condition: Any, ahead: int = READ_AHEAD) -> Iterator[pa.Table]:
    """The window's rows one Parquet row group at a time (a file holds one or a few; a compacted day's file
    several of up to 1Mi rows), in order, with at most ``ahead`` read ahead in threads (a remote store's latency
    overlaps the counting). pyarrow's own dataset scanner buffered most of a 550 MB log while the counts fell
    behind it (850 MB peak at 10,000,000 rows); piece by piece, memory is bounded by the pieces in flight."""
    schema = dataset.schema
    with ThreadPoolExecutor(ahead, thread_name_prefix="berth-read") as reader:
        pending: deque[Future[pa.Table]] = deque()
        for piece in row_groups(dataset, condition, ahead):
            pending.append(reader.submit(piece.to_table, columns=columns, filter=condition, schema=schema,
                                         use_threads=False))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def row_groups(dataset: ds.Dataset, condition: Any, ahead: int) -> Iterator[ds.Fragment]:
    """The row groups of the dataset's files that may hold rows matching ``condition`` (by the files'
    statistics), the files' footers read ``ahead`` in threads."""
    schema = dataset.schema
    with ThreadPoolExecutor(ahead, thread_name_prefix="berth-footer") as pool:
        splits: deque[Future[list[ds.Fragment]]] = deque()
        for fragment in dataset.get_fragments():
            splits.append(pool.submit(fragment.split_by_row_group, condition, schema=schema))
            if len(splits) > ahead:
                yield from splits.popleft().result()
        while splits:
            yield from splits.popleft().result()
