"""Batch scoring of a table file, however large: read in chunks, validate, predict, append, publish.

Inputs and outputs are CSV, Parquet or JSON Lines, chosen by the file's extension, on a local path or an
fsspec URL. Memory holds one chunk at a time. Each chunk is validated against the model's signature with its
absolute row numbers, so an error names the row of the file (0-based, header not counted). The output is
written to a temporary file beside the target and renamed into place only once every row is scored: a failure
never leaves a half-written output.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth import storage
from berth.batch_io import TypedReadError
from berth.errors import StorageError, UsageError
from berth.ordered_pool import ordered_map

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from berth.model import LoadedModel
    from berth.signature import Signature

DEFAULT_CHUNK_SIZE = 10_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
ROW_COLUMN = "row"
# runtimes that predict on one thread and may be called from several (an ONNX-flavor model is not one of them:
# its onnxruntime session keeps the library's default intra-op pool, every core, so more scoring threads only
# oversubscribe: bench/results/batch_predict.md, onnx --threads 1 1.75x the plain script, --threads 2 1.63x)
CONCURRENT_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm", "catboost"})

Chunk = Any
"""A chunk of rows: a ``pyarrow.Table`` (CSV and Parquet) or a ``pandas.DataFrame`` (JSON Lines, lenient CSV)."""
Progress = Callable[[int, int | None], None]
"""Called after each chunk with the rows done so far and the total, when the input's metadata tells it."""


@dataclass(frozen=True)
class BatchResult:
    rows: int
    output: str
    columns: list[str]


def table_format(path: str | os.PathLike[str]) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name (``.csv.gz`` and other compressed text too)."""
    name = str(path).lower()
    text_name = name.removesuffix(next((c for c in COMPRESSIONS if name.endswith(c)), ""))
    for suffix, kind in FORMATS.items():
        if text_name.endswith(suffix) and (text_name == name or kind != "parquet"):
            return kind
    raise UsageError(f"cannot tell the format of {path} from its name: use .csv, .parquet or .jsonl")


def count_rows(path: str | os.PathLike[str]) -> int | None:
    """The row count when the file's metadata has it (Parquet), else None."""
    if table_format(path) != "parquet":
        return None
    with _parquet_file(str(path)) as parquet:
        return int(parquet.metadata.num_rows)


def iter_chunks(
    path: str | os.PathLike[str],
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    *,
    signature: Signature | None = None,
    text_columns: tuple[str, ...] = (),
) -> Generator[pd.DataFrame, None, None]:
    """The table at ``path`` as DataFrames of at most ``chunk_size`` rows.

    CSV holds only text: with a ``signature`` its string columns stay text and its numeric columns become
    numbers, except the values that are not numbers, left as they are for validation to name.
    """
    import pandas as pd

    if chunk_size < 1:
        raise UsageError(f"the chunk size must be at least 1, not {chunk_size}")
    source, options = _source(path)
    kind = table_format(path)
    if kind == "parquet":
        with _parquet_file(str(path)) as parquet:
            for batch in parquet.iter_batches(batch_size=chunk_size):
                yield batch.to_pandas()
        return
    if kind == "jsonl":
        with pd.read_json(source, lines=True, chunksize=chunk_size, dtype=False,
                          storage_options=options) as reader:
            yield from reader
        return
    strings = list(text_columns)
    if signature is not None:
        strings += [c.name for c in signature.columns if c.dtype == "string"]
    with pd.read_csv(source, chunksize=chunk_size, dtype=dict.fromkeys(strings, str),
                     storage_options=options) as reader:
        for chunk in reader:
            yield _numbers_from_text(chunk, signature) if signature else chunk


def read_head(path: str | os.PathLike[str], rows: int = 1_000) -> pd.DataFrame:
    """The first ``rows`` rows of a table file (a sample to infer a signature from)."""
    chunks = iter_chunks(path, rows)
    try:
        return next(chunks)
    except StopIteration:
        raise UsageError(f"{path} has no rows") from None
    finally:
        chunks.close()


def predict_file(model: LoadedModel, input: str | os.PathLike[str], output: str | os.PathLike[str], *,
                 id_column: str | None = None, probabilities: bool = False,
                 chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None,
                 threads: int | None = None) -> BatchResult:
    """Score every row of ``input`` and write the predictions, beside an id column, to ``output``.

    Chunks are scored on ``threads`` threads (default: :func:`default_threads`), at most two per thread in
    flight, and written in input order: the output is the same file whatever the number of threads."""
    if probabilities and not model.has_proba:
        raise UsageError(f"model {model.name!r} gives no class probabilities; drop --probabilities")
    if chunk_size < 1:
        raise UsageError(f"the chunk size must be at least 1, not {chunk_size}")
    check_paths(input, output)
    workers = default_threads(model) if threads is None else threads
    if workers < 1:
        raise UsageError(f"the number of threads must be at least 1, not {workers}")
    # ids are identifiers: read from CSV as the text they are (leading zeros kept, one type in every chunk)
    text_columns = (id_column,) if id_column and id_column not in model.signature.names else ()

    def score(numbered: tuple[int, Chunk]) -> pa.Table:
        offset, chunk = numbered
        return score_chunk(model, chunk, offset, id_column=id_column, probabilities=probabilities)

    def run(typed: bool) -> tuple[int, list[str]]:
        chunks = _numbered(_chunks(input, chunk_size, model.signature, text_columns, typed))
        return _write_all(ordered_map(score, chunks, workers=workers), staged, table_format(output), progress,
                          count_rows(input))

    with storage.staged_file(output) as staged:
        typed = table_format(input) == "csv" and _typed_csv(model.signature, str(input))
        try:
            done, columns = run(typed)
        except TypedReadError:  # a value that is not of its column's type: again the lenient way, which names it
            done, columns = run(False)
        if not done:
            raise UsageError(f"{input} has no rows to score")
    return BatchResult(done, str(output), columns)


def default_threads(model: LoadedModel) -> int:
    """One scoring thread per core for a model whose runtime predicts on one thread and may be called from
    several (scikit-learn, the boosting libraries, compiled twins); else one (torch, Keras and the onnx flavor's
    session use every core already; a python-flavor model is the user's code, not known to allow concurrent
    calls)."""
    if model.manifest.flavor not in CONCURRENT_FLAVORS and not getattr(model, "compiled", False):
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _typed_csv(signature: Signature, path: str) -> bool:
    """Whether the typed Arrow reader applies: a table signature of numbers and text, a stream Arrow reads."""
    from berth.batch_io import arrow_readable

    return signature.layout == "table" and arrow_readable(path) and all(
        c.is_numeric or c.dtype == "string" for c in signature.columns)


def _chunks(path: str | os.PathLike[str], chunk_size: int, signature: Signature, text_columns: tuple[str, ...],
            typed: bool) -> Iterator[Chunk]:
    from berth import batch_io

    if typed:
        types = batch_io.csv_column_types(signature, text_columns)
        yield from batch_io.typed_csv_chunks(str(path), chunk_size, types)
    elif table_format(path) == "parquet":
        _source(path)  # a clear error for a missing file
        yield from batch_io.parquet_chunks(str(path), chunk_size)
    else:
        yield from iter_chunks(path, chunk_size, signature=signature, text_columns=text_columns)


def _numbered(chunks: Iterator[Chunk]) -> Iterator[tuple[int, Chunk]]:
    """Each non-empty chunk with the file row number of its first row."""
    done = 0
    for chunk in chunks:
        rows = _rows(chunk)
        if rows:
            yield done, chunk
            done += rows


def _write_all(scored: Iterator[pa.Table], path: Path, kind: str, progress: Progress | None,
               total: int | None) -> tuple[int, list[str]]:
    from berth.batch_io import TableWriter

    writer = TableWriter(path, kind)  # opens (and so truncates) the file at its first table
    done, columns = 0, []
    try:
        for table in scored:
            writer.write(table)
            done += table.num_rows
            columns = list(table.column_names)
            if progress:
                progress(done, total)
    finally:
        # a write error stops the scoring threads now (what has not started is cancelled), not when the suspended
        # generator is collected
        close = getattr(scored, "close", None)
        if close is not None:
            close()
        writer.close()
    return done, columns


def _rows(chunk: Chunk) -> int:
    return int(chunk.num_rows) if hasattr(chunk, "num_rows") else len(chunk)


def score_chunk(model: LoadedModel, chunk: Chunk, row_offset: int, *, id_column: str | None = None,
                probabilities: bool = False) -> pa.Table:
    """Predictions for one chunk (an Arrow table or a DataFrame), with the id column first.

    ``row_offset`` numbers the chunk's rows in the file. The model gets the chunk's columns as the numpy arrays
    a DataFrame of them would hold: validation and its errors are those of any other input."""
    import pyarrow as pa

    names = [str(c) for c in (chunk.column_names if isinstance(chunk, pa.Table) else chunk.columns)]
    if id_column is not None and id_column not in names:
        raise UsageError(f"the input has no column {id_column!r} (--id-column); its columns are "
                         + ", ".join(names))
    rows = _rows(chunk)
    drop_id = id_column is not None and id_column not in model.signature.names
    features = [n for n in names if not (drop_id and n == id_column)]
    inputs = model.prepare(_model_input(model, chunk, features), row_offset=row_offset)
    out: dict[str, Any] = {}
    if id_column is not None:
        out[id_column] = (chunk.column(id_column) if isinstance(chunk, pa.Table)
                          else _arrow(chunk[id_column].to_numpy()))
    else:
        out[ROW_COLUMN] = np.arange(row_offset, row_offset + rows, dtype="int64")
    predictions = np.asarray(model.predict_prepared(inputs))
    if predictions.ndim > 1 and predictions.reshape(rows, -1).shape[1] > 1:
        for i, column in enumerate(predictions.reshape(rows, -1).T):
            out[f"prediction_{i}"] = _arrow(column)
    else:
        out["prediction"] = _arrow(predictions.reshape(rows))
    if probabilities:
        proba = np.asarray(model.predict_proba_prepared(inputs)).reshape(rows, -1)
        classes = model.classes if model.classes is not None else list(range(proba.shape[1]))
        for label, column in zip(classes, proba.T, strict=True):
            out[f"proba_{label}"] = _arrow(column)
    return pa.table(out)


def _model_input(model: LoadedModel, chunk: Chunk, names: list[str]) -> Any:
    """The chunk's feature columns as ``{name: numpy array}``, the arrays a DataFrame of them holds."""
    import pyarrow as pa

    if model.signature.layout == "tensor":  # a tensor is the whole table as one array
        frame = chunk.to_pandas() if isinstance(chunk, pa.Table) else chunk
        return frame[names]
    if not isinstance(chunk, pa.Table):
        return {name: chunk[name].to_numpy() for name in names}
    return {name: _numpy(chunk.column(name)) for name in names}


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as pandas would give it: numbers and text directly, anything else through pandas."""
    import pyarrow as pa

    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_string(kind) \
            or pa.types.is_large_string(kind) or (pa.types.is_boolean(kind) and not column.null_count):
        return column.to_numpy()
    return np.asarray(column.to_pandas().to_numpy())


def _arrow(values: np.ndarray) -> pa.Array:
    """A numpy column as an Arrow array (Python objects of one kind, e.g. text labels, become that type)."""
    import pyarrow as pa

    if values.dtype.kind == "O":
        try:  # NaN / None are missing values, as pandas read them
            return pa.array(list(values), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed kinds (ids that are numbers and text): as text
            return pa.array([None if _is_missing(v) else str(v) for v in values], pa.string())
    return pa.array(values)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _numbers_from_text(chunk: pd.DataFrame, signature: Signature) -> pd.DataFrame:
    import pandas as pd

    for spec in signature.columns:
        if not spec.is_numeric or spec.name not in chunk.columns:
            continue
        text = chunk[spec.name]
        if pd.api.types.is_numeric_dtype(text.dtype):
            continue
        numbers = pd.to_numeric(text, errors="coerce")
        bad = numbers.isna() & text.notna()
        if bad.any():  # keep the offending text so that validation names those rows, and only those
            mixed = numbers.astype(object)
            mixed[bad] = text[bad]
            chunk[spec.name] = mixed
        else:
            chunk[spec.name] = numbers
    return chunk


def _source(path: str | os.PathLike[str]) -> tuple[str, dict[str, Any] | None]:
    if storage.is_remote(path):
        return str(path), storage.storage_options(str(path))
    local = storage.local_path(path)
    if not local.is_file():
        raise StorageError(f"not found: {path}")
    return str(local), None


@contextmanager
def _parquet_file(path: str) -> Iterator[pq.ParquetFile]:
    import pyarrow.parquet as pq

    source, _ = _source(path)
    if not storage.is_remote(path):
        with pq.ParquetFile(source) as parquet:
            yield parquet
        return
    fs, remote = storage.filesystem(path)
    with fs.open(remote, "rb") as handle, pq.ParquetFile(handle) as parquet:
        yield parquet


def check_paths(input: str | os.PathLike[str], output: str | os.PathLike[str]) -> None:
    """Refuse unknown formats and scoring a file onto itself (cheap: before loading a model)."""
    table_format(input)
    table_format(output)
    same = (str(input) == str(output) if storage.is_remote(input) or storage.is_remote(output)
            else storage.local_path(input).resolve() == storage.local_path(output).resolve())
    if same:
        raise UsageError("the output must not be the input file")
