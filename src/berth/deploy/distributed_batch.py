"""Scoring a Parquet dataset in parallel: ``berth predict URI --input DATASET --output DIR --engine ...``.

The dataset is one Parquet file or a directory of them (found recursively, taken in path order; names starting
with ``.`` or ``_`` are skipped, as pyarrow does). The driver plans **partitions** from the files' metadata
alone: row ranges of at most ``partition_rows`` that never cross a file, each with the absolute row number it
starts at. Every engine scores the same partitions with the same function, :func:`score_partition`, which
reads its range in chunks and calls :func:`berth.batch.score_chunk` on each, exactly as ``berth predict`` does
on a file. So every engine computes the same rows, numbers and ids:

- ``local``: one process, partitions in order;
- ``ray``: Ray Data, one scoring actor per CPU, each loading (and verifying) the model once;
- ``dask``: a ``distributed`` cluster, each worker process loading (and verifying) the model once.

Output: the directory ``DIR`` holds ``part-00000.parquet``, ``part-00001.parquet``... one per partition, in row
order, and ``_berth_predictions.json`` (rows, parts, columns, model, engine). Workers send their predictions
back to the driver, which writes the parts into a hidden sibling directory and renames it into place only when
every part is written (:mod:`berth.storage` publication: the marker goes last on remote stores). Readers
(``pandas.read_parquet(DIR)``, Spark, DuckDB) skip the ``_`` file and read the parts in name order.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from berth import storage
from berth.batch import DEFAULT_CHUNK_SIZE, BatchResult, Progress, default_threads, score_chunk
from berth.errors import BerthError, StorageError, UsageError
from berth.ordered_pool import ordered_map

if TYPE_CHECKING:
    import pyarrow as pa

    from berth.model import LoadedModel

log = logging.getLogger("berth.batch")
ENGINES = ("local", "ray", "dask")
MARKER = "_berth_predictions.json"
DEFAULT_PARTITION_ROWS = 1_000_000


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: the URI and the same trust options as the command."""

    uri: str
    trust: bool = False
    trusted_types: tuple[str, ...] = ()
    allow_version_mismatch: bool = False

    def load(self) -> LoadedModel:
        from berth.model import load

        return load(self.uri, trust=self.trust, trusted_types=self.trusted_types,
                    allow_version_mismatch=self.allow_version_mismatch)


@dataclass(frozen=True)
class Partition:
    """Rows ``[start, stop)`` of one Parquet file, the first of them being row ``offset`` of the dataset."""

    index: int
    path: str
    start: int
    stop: int
    offset: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ScoreOptions:
    id_column: str | None = None
    probabilities: bool = False
    chunk_size: int = DEFAULT_CHUNK_SIZE
    threads: int | None = None  # chunks of a partition scored at once: the local engine one per core, else 1


@dataclass
class Plan:
    partitions: list[Partition] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)


# ---------------------------------------------------------------------------------------------------- planning


def dataset_files(dataset: str) -> list[str]:
    """The Parquet files of ``dataset`` (one file, or a directory searched recursively), in path order."""
    if storage.is_remote(dataset):
        fs, root = storage.filesystem(dataset)
        protocol = dataset.split("://", 1)[0]
        if fs.isfile(root):
            return [dataset]
        found = sorted(fs.find(root))
        return [f"{protocol}://{path}" for path in found if _is_data_file(root, path)]
    local = storage.local_path(dataset)
    if local.is_file():
        return [str(local)]
    if not local.is_dir():
        raise StorageError(f"not found: {dataset}")
    return sorted(str(p) for p in local.rglob("*") if p.is_file() and _is_data_file(str(local), str(p)))


def _is_data_file(root: str, path: str) -> bool:
    relative = Path(path).relative_to(root) if Path(path) != Path(root) else Path(Path(path).name)
    return not any(part.startswith((".", "_")) for part in relative.parts) and \
        path.lower().endswith((".parquet", ".pq"))


def plan(dataset: str, partition_rows: int = DEFAULT_PARTITION_ROWS) -> Plan:
    """Partitions of at most ``partition_rows`` rows, cut at row-group boundaries where the groups allow."""
    from berth.batch import count_rows

    if partition_rows < 1:
        raise UsageError(f"partition_rows must be at least 1, not {partition_rows}")
    files = dataset_files(dataset)
    if not files:
        raise UsageError(f"{dataset} holds no Parquet files (.parquet or .pq)")
    result, offset = Plan(), 0
    for path in files:
        rows = count_rows(path) or 0
        start = 0
        for stop in _cuts(path, rows, partition_rows):
            result.partitions.append(Partition(len(result.partitions), path, start, stop, offset + start))
            start = stop
        offset += rows
    if not result.rows:
        raise UsageError(f"{dataset} has no rows to score")
    return result


def _cuts(path: str, rows: int, partition_rows: int) -> list[int]:
    """Where the partitions of one file end: after whole row groups, splitting a group only when it is too big."""
    from berth.batch import _parquet_file

    with _parquet_file(path) as parquet:
        groups = [parquet.metadata.row_group(i).num_rows for i in range(parquet.metadata.num_row_groups)]
    cuts, current, position = [], 0, 0
    for size in groups:
        if current and current + size > partition_rows:
            cuts.append(position)
            current = 0
        while current + size > partition_rows:  # a row group larger than a partition: cut inside it
            step = partition_rows - current
            position, size, current = position + step, size - step, 0
            cuts.append(position)
        position, current = position + size, current + size
    if not cuts or cuts[-1] != rows:
        cuts.append(rows)
    return [c for c in cuts if c > 0]


# ---------------------------------------------------------------------------------------------------- scoring


def read_partition(partition: Partition, chunk_size: int) -> Iterator[pa.Table]:
    """The rows of ``partition`` as Arrow tables of at most ``chunk_size`` rows."""
    import pyarrow as pa

    from berth.batch import _parquet_file

    with _parquet_file(partition.path) as parquet:
        groups: list[int] = []
        first, skip = 0, 0
        for i in range(parquet.metadata.num_row_groups):
            size = parquet.metadata.row_group(i).num_rows
            if first < partition.stop and first + size > partition.start:
                if not groups:
                    skip = partition.start - first  # rows of the first group that belong to the partition before
                groups.append(i)
            first += size
        wanted = partition.rows
        for batch in parquet.iter_batches(batch_size=chunk_size, row_groups=groups):
            if skip >= batch.num_rows:
                skip -= batch.num_rows
                continue
            batch = batch.slice(skip, wanted)
            skip, wanted = 0, wanted - batch.num_rows
            if batch.num_rows:
                yield pa.Table.from_batches([batch])
            if not wanted:
                return


def score_partition(model: LoadedModel, partition: Partition, options: ScoreOptions) -> pa.Table:
    """The predictions of one partition: the same chunks and scoring function as ``berth predict`` on a file,
    on ``options.threads`` threads (1 in Ray and Dask workers, which are one per core already)."""
    import pyarrow as pa

    starts = [0]

    def numbered(chunks: Iterator[pa.Table]) -> Iterator[tuple[int, pa.Table]]:
        for chunk in chunks:
            yield starts[-1], chunk
            starts.append(starts[-1] + chunk.num_rows)

    def score(item: tuple[int, pa.Table]) -> pa.Table:
        done, chunk = item
        return score_chunk(model, chunk, partition.offset + done, id_column=options.id_column,
                           probabilities=options.probabilities)

    tables = list(ordered_map(score, numbered(read_partition(partition, options.chunk_size)),
                              workers=options.threads or 1))
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


_WORKER_MODELS: OrderedDict[ModelSpec, LoadedModel] = OrderedDict()
_WORKER_CACHE_SIZE = 2  # a job's model, and one other: a long-lived worker keeps no model of old jobs
_WORKER_LOADS = [0]
_WORKER_LOCK = threading.Lock()


def worker_model(spec: ModelSpec) -> LoadedModel:
    """The model in this worker process, loaded and verified on first use, then reused for every partition.

    Locked: a worker with several threads (common on clusters) would otherwise load it once per thread."""
    with _WORKER_LOCK:
        if spec in _WORKER_MODELS:
            _WORKER_MODELS.move_to_end(spec)
            return _WORKER_MODELS[spec]
        model = _WORKER_MODELS[spec] = spec.load()
        _WORKER_LOADS[0] += 1
        while len(_WORKER_MODELS) > _WORKER_CACHE_SIZE:
            _WORKER_MODELS.popitem(last=False)
        return model


def worker_loads() -> int:
    """How many times this process loaded a model for the dask engine (a test asks the workers)."""
    return _WORKER_LOADS[0]


def score_with_worker_model(spec: ModelSpec, partition: Partition, options: ScoreOptions) -> pa.Table:
    return score_partition(worker_model(spec), partition, options)


class RayScorer:
    """A Ray Data actor: loads the model once, then scores the partitions it is given (one per batch)."""

    def __init__(self, spec: ModelSpec, options: ScoreOptions) -> None:
        self.model = spec.load()
        self.options = options

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np
        import pyarrow as pa

        indexes, tables, errors = [], [], []
        for raw in batch["partition"]:
            partition = Partition(**json.loads(raw))
            indexes.append(partition.index)
            try:
                table = score_partition(self.model, partition, self.options)
            except BerthError as error:
                # returned as data, not raised: how Ray carries a raised error's cause to the caller depends on
                # what the worker happened to import (tblib), and the caller needs the error itself
                tables.append(b"")
                errors.append(json.dumps({"type": type(error).__name__, "message": str(error)}))
                continue
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            tables.append(sink.getvalue().to_pybytes())
            errors.append("")
        return {"index": np.array(indexes), "table": np.array(tables, dtype=object), "error": np.array(errors)}


# ---------------------------------------------------------------------------------------------------- engines

Scored = Iterator[tuple[Partition, "pa.Table"]]


def run_local(spec: ModelSpec, partitions: Sequence[Partition], options: ScoreOptions,
              model: LoadedModel | None = None) -> Scored:
    model = model or spec.load()
    options = replace(options, threads=options.threads or default_threads(model))  # one process: every core
    for partition in partitions:
        yield partition, score_partition(model, partition, options)


def run_ray(spec: ModelSpec, partitions: Sequence[Partition], options: ScoreOptions, address: str | None,
            quiet: bool = False) -> Scored:
    from berth.ray_runtime import import_ray, ray_instance

    import_ray()
    import pyarrow as pa

    with ray_instance(address):
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = not quiet  # berth draws its own bar on a terminal
        workers = max(1, min(len(partitions), int(ray.cluster_resources().get("CPU", 1))))
        items = [{"partition": json.dumps(asdict(p))} for p in partitions]
        scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            RayScorer, fn_constructor_args=(spec, options), batch_size=1, num_cpus=1,
            compute=ray.data.ActorPoolStrategy(size=workers))
        for row in scored.iter_rows():
            partition = partitions[int(row["index"])]
            if row["error"]:
                raise worker_error(json.loads(row["error"]))
            with pa.ipc.open_stream(row["table"]) as reader:
                yield partition, reader.read_all()


def run_dask(spec: ModelSpec, partitions: Sequence[Partition], options: ScoreOptions, address: str | None) -> Scored:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise UsageError(f"the dask engine needs Dask ({exc.msg}): pip install 'berth[dask]'") from None
    cluster = None
    if address is None:
        cluster = LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None)
    try:
        with Client(cluster or address) as client:
            futures = client.map(score_with_worker_model, [spec] * len(partitions), partitions,
                                 [options] * len(partitions), pure=False)
            position = {future.key: index for index, future in enumerate(futures)}
            try:
                for future in as_completed(futures):
                    yield partitions[position[future.key]], future.result()
            finally:
                client.cancel(futures)  # after an error, the rest of the job stops here, not later
    finally:
        if cluster is not None:
            cluster.close()


# ---------------------------------------------------------------------------------------------------- the command


def predict_dataset(spec: ModelSpec, dataset: str, output: str, *, engine: str = "local",
                    address: str | None = None, options: ScoreOptions | None = None,
                    partition_rows: int = DEFAULT_PARTITION_ROWS, progress: Progress | None = None,
                    model: LoadedModel | None = None) -> BatchResult:
    """Score every row of the Parquet ``dataset`` with ``engine`` and publish the parts under ``output``."""
    import pyarrow.parquet as pq

    options = options or ScoreOptions()
    check_request(engine, address, dataset, output)
    work = plan(dataset, partition_rows)
    if model is not None:  # checked once here, before any worker starts
        _check_options(model, options)
    runner: Callable[[], Scored]
    if engine == "local":
        def runner() -> Scored:
            return run_local(spec, work.partitions, options, model)
    elif engine == "ray":
        def runner() -> Scored:
            return run_ray(spec, work.partitions, options, address, quiet=progress is not None)
    else:
        def runner() -> Scored:
            return run_dask(spec, work.partitions, options, address)
    log.info("scoring %d rows in %d partitions with the %s engine", work.rows, len(work.partitions), engine)
    width = max(5, len(str(len(work.partitions) - 1)))
    done, columns = 0, []
    with storage.staging_directory(output) as staged:
        for partition, table in _berth_errors(runner()):
            if table.num_rows != partition.rows:
                raise BerthError(f"partition {partition.index} gave {table.num_rows} rows for {partition.rows}")
            pq.write_table(table, staged / f"part-{partition.index:0{width}d}.parquet")
            done += table.num_rows
            columns = list(table.column_names)
            if progress:
                progress(done, work.rows)
        marker = {"rows": done, "parts": len(work.partitions), "columns": columns, "engine": engine,
                  "input": dataset, "model": spec.uri}
        (staged / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        storage.publish(staged, output, MARKER, overwrite=True)
    return BatchResult(done, output, columns)


def _berth_errors(scored: Scored) -> Scored:
    """Re-raise a berth error that a worker raised (Ray and Dask wrap it) as itself, for a clean message."""
    try:
        yield from scored
    except Exception as exc:
        cause: BaseException | None = exc
        while cause is not None and not (isinstance(cause, BerthError) and _plain(cause)):
            cause = cause.__cause__ or getattr(cause, "cause", None)
        if cause is None or cause is exc:
            raise
        raise cause from None


def worker_error(described: dict[str, str]) -> BerthError:
    """The berth error a Ray worker returned as data, rebuilt as its own class (a name berth.errors defines)."""
    from berth import errors

    kind = getattr(errors, str(described.get("type")), None)
    if not (isinstance(kind, type) and issubclass(kind, BerthError)):
        kind = BerthError
    return kind(str(described.get("message", "")))


def _plain(error: BaseException) -> bool:
    """Not one of Ray's wrappers that subclass the error they carry."""
    return not type(error).__module__.startswith("ray.")


def _check_options(model: LoadedModel, options: ScoreOptions) -> None:
    if options.probabilities and not model.has_proba:
        raise UsageError(f"model {model.name!r} gives no class probabilities; drop --probabilities")


def check_request(engine: str, address: str | None, dataset: str, output: str) -> None:
    """Refuse an unknown engine, a lone --address, and an output that is not ours (cheap: before any loading)."""
    if engine not in ENGINES:
        raise UsageError(f"--engine is one of {', '.join(ENGINES)}, not {engine!r}")
    if address is not None and engine == "local":
        raise UsageError("--address goes with --engine ray or dask")
    check_output(dataset, output)


def check_output(dataset: str, output: str) -> None:
    """The output is a directory: absent, empty, or an earlier output of this command (which is replaced)."""
    if storage.is_remote(output):
        if storage.exists(output) and not storage.exists(storage.join(output, MARKER)):
            fs, root = storage.filesystem(output)
            if fs.ls(root):
                raise UsageError(f"{output} exists and is not an output of berth predict; choose another")
        return
    target = storage.local_path(output).absolute()
    if not storage.is_remote(dataset) and target == storage.local_path(dataset).absolute():
        raise UsageError("the output must not be the input")
    if target.is_file():
        raise UsageError(f"{output} is a file; with --engine the output is a directory of Parquet parts")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).exists():
        raise UsageError(f"{output} exists and is not an output of berth predict; choose another directory")
