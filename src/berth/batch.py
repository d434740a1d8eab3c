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
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import pandas as pd

from berth import storage
from berth.errors import StorageError, UsageError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from berth.model import LoadedModel
    from berth.signature import Signature

DEFAULT_CHUNK_SIZE = 10_000
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
ROW_COLUMN = "row"

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
                 chunk_size: int = DEFAULT_CHUNK_SIZE, progress: Progress | None = None) -> BatchResult:
    """Score every row of ``input`` and write the predictions, beside an id column, to ``output``."""
    if probabilities and not model.has_proba:
        raise UsageError(f"model {model.name!r} gives no class probabilities; drop --probabilities")
    check_paths(input, output)
    total, done, columns = count_rows(input), 0, []
    # ids are identifiers: read from CSV as the text they are (leading zeros kept, one type in every chunk)
    text_columns = (id_column,) if id_column and id_column not in model.signature.names else ()
    with storage.staged_file(output) as staged:
        writer = TableWriter(staged, table_format(output))
        try:
            for chunk in iter_chunks(input, chunk_size, signature=model.signature, text_columns=text_columns):
                if chunk.empty:
                    continue
                frame = score_chunk(model, chunk, done, id_column=id_column, probabilities=probabilities)
                writer.write(frame)
                done += len(frame)
                columns = list(frame.columns)
                if progress:
                    progress(done, total)
        finally:
            writer.close()
        if not done:
            raise UsageError(f"{input} has no rows to score")
    return BatchResult(done, str(output), columns)


def score_chunk(model: LoadedModel, chunk: pd.DataFrame, row_offset: int, *, id_column: str | None = None,
                probabilities: bool = False) -> pd.DataFrame:
    """Predictions for one chunk, with the id column first; ``row_offset`` numbers its rows in the file."""
    if id_column is not None and id_column not in chunk.columns:
        raise UsageError(f"the input has no column {id_column!r} (--id-column); its columns are "
                         + ", ".join(map(str, chunk.columns)))
    features = chunk
    if id_column is not None and id_column not in model.signature.names:
        features = chunk.drop(columns=[id_column])
    inputs = model.prepare(features, row_offset=row_offset)
    if id_column is not None:
        out = pd.DataFrame({id_column: chunk[id_column].to_numpy()})
    else:
        out = pd.DataFrame({ROW_COLUMN: np.arange(row_offset, row_offset + len(chunk), dtype="int64")})
    predictions = np.asarray(model.predict_prepared(inputs))
    if predictions.ndim > 1 and predictions.reshape(len(chunk), -1).shape[1] > 1:
        for i, column in enumerate(predictions.reshape(len(chunk), -1).T):
            out[f"prediction_{i}"] = column
    else:
        out["prediction"] = predictions.reshape(len(chunk))
    if probabilities:
        proba = np.asarray(model.predict_proba_prepared(inputs)).reshape(len(chunk), -1)
        classes = model.classes if model.classes is not None else list(range(proba.shape[1]))
        for label, column in zip(classes, proba.T, strict=True):
            out[f"proba_{label}"] = column
    return out


class TableWriter:
    """Appends DataFrames to a local CSV, Parquet or JSON Lines file (Parquet: the first chunk's schema)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._text: TextIO | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == "parquet":
            self._write_parquet(frame)
            return
        first = self._text is None
        if self._text is None:
            self._text = self.path.open("w", encoding="utf-8", newline="")
        if self.kind == "csv":
            frame.to_csv(self._text, header=first, index=False)
        else:
            self._text.write(frame.to_json(orient="records", lines=True, date_format="iso"))

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._schema = table.schema
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        elif not table.schema.equals(self._schema):
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
                raise UsageError(f"a column changes type from one chunk to the next ({exc}); "
                                 "write CSV or JSON Lines, or give that column one type") from exc
        self._parquet.write_table(table)

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
        if self._parquet is not None:
            self._parquet.close()


def _numbers_from_text(chunk: pd.DataFrame, signature: Signature) -> pd.DataFrame:
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
