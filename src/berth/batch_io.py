"""Arrow readers and writers for batch scoring: table files in, chunks of exactly ``chunk_size`` rows out.

CSV is read with pyarrow's streaming reader, each column typed from the model's signature (numbers as float64 or
int64, text as text), a block of bounded size at a time; the blocks are cut and joined into chunks of the
requested row count, so chunk boundaries (and the rows an error names) do not depend on the block size. Parquet
is read by row groups. A CSV value that does not parse as its column's type stops the typed reader with
:class:`TypedReadError`: the caller then reads the file again the lenient way (pandas, values that are not
numbers kept for validation to name), which is also the way for JSON Lines and for compressions Arrow cannot
stream.

Writers take Arrow tables: CSV with ``pyarrow.csv.CSVWriter``, Parquet with ``pyarrow.parquet.ParquetWriter``
(both keep the first chunk's schema and cast later chunks to it), JSON Lines through pandas' writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import pyarrow as pa

from berth import storage
from berth.errors import StorageError, UsageError

if TYPE_CHECKING:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from berth.signature import Signature

BLOCK_BYTES = 1 << 20  # the typed CSV reader's unit of work and of memory: 1 MiB of text
ARROW_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}  # the ones Arrow streams
# pandas' default missing-value markers, so that both readers agree on what is missing
NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
             "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]


class TypedReadError(Exception):
    """A CSV value is not of its column's type: read the file again the lenient way, which names it."""


def arrow_readable(path: str) -> bool:
    """Whether the typed reader can stream this CSV (uncompressed, or a compression Arrow decodes)."""
    name = path.lower()
    return name.endswith(".csv") or any(name.endswith(".csv" + suffix) for suffix in ARROW_COMPRESSIONS)


def csv_column_types(signature: Signature, text_columns: tuple[str, ...]) -> dict[str, pa.DataType]:
    """Arrow types by column: the signature's numbers and text, and the given columns as text."""
    types: dict[str, pa.DataType] = {}
    for spec in signature.columns:
        if spec.is_integer:
            types[spec.name] = pa.int64()
        elif spec.is_numeric:
            types[spec.name] = pa.float64()
        elif spec.dtype == "string":
            types[spec.name] = pa.string()
    types.update(dict.fromkeys(text_columns, pa.string()))
    return types


def typed_csv_chunks(path: str, chunk_size: int, types: dict[str, pa.DataType]) -> Iterator[pa.Table]:
    """The CSV at ``path`` as tables of ``chunk_size`` rows (the last may be shorter), typed by ``types``.

    Columns not in ``types`` are read as text (a signature has no such column; validation names it)."""
    import pyarrow.csv as pacsv

    with _open_binary(path) as stream:
        try:
            convert = pacsv.ConvertOptions(
                column_types={name: types.get(name, pa.string()) for name in _header(path)},
                null_values=NA_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=True)
            reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
                                    convert_options=convert)
            yield from rechunk(_batches(reader), chunk_size)
        except pa.ArrowInvalid as exc:
            raise TypedReadError(str(exc)) from exc


def _batches(reader: pacsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    while True:
        try:
            yield reader.read_next_batch()
        except StopIteration:
            return


def _header(path: str) -> list[str]:
    """The column names of a CSV (read with Arrow's own parser, so that quoting is understood alike)."""
    import pyarrow.csv as pacsv

    with _open_binary(path) as stream:
        reader = pacsv.open_csv(stream, read_options=pacsv.ReadOptions(block_size=1 << 16, use_threads=False))
        return list(reader.schema.names)


def _open_binary(path: str) -> Any:
    """A binary stream of the file's text, decompressed."""
    if storage.is_remote(path):
        import fsspec

        return fsspec.open(path, "rb", compression="infer", **(storage.storage_options(path) or {})).open()
    local = storage.local_path(path)
    if not local.is_file():
        raise StorageError(f"not found: {path}")
    codec = next((c for s, c in ARROW_COMPRESSIONS.items() if str(local).lower().endswith(s)), None)
    return pa.input_stream(str(local), compression=codec)


def rechunk(batches: Iterator[pa.RecordBatch], chunk_size: int) -> Iterator[pa.Table]:
    """Record batches of any sizes as tables of exactly ``chunk_size`` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        while batch.num_rows:
            take = min(chunk_size - held, batch.num_rows)
            pending.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == chunk_size:
                yield pa.Table.from_batches(pending)
                pending, held = [], 0
    if held:
        yield pa.Table.from_batches(pending)


def parquet_chunks(path: str, chunk_size: int) -> Iterator[pa.Table]:
    from berth.batch import _parquet_file

    with _parquet_file(path) as parquet:
        for batch in parquet.iter_batches(batch_size=chunk_size):
            yield pa.Table.from_batches([batch])


class TableWriter:
    """Appends Arrow tables to a local CSV, Parquet or JSON Lines file, in the first table's schema."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self._schema: pa.Schema | None = None
        self._csv: pacsv.CSVWriter | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._binary: BinaryIO | None = None
        self._text: TextIO | None = None

    def write(self, table: pa.Table) -> None:
        if self._schema is None:
            self._schema = _writable_schema(table.schema)
            self._open(self._schema)
        if self._csv is not None:
            self._csv.write_table(self._conform(table))
        elif self._parquet is not None:
            self._parquet.write_table(self._conform(table))
        else:  # JSON Lines: each record says its own types
            assert self._text is not None
            self._text.write(table.to_pandas().to_json(orient="records", lines=True, date_format="iso"))

    def _open(self, schema: pa.Schema) -> None:
        if self.kind == "csv":
            import pyarrow.csv as pacsv

            self._binary = self.path.open("wb")
            self._csv = pacsv.CSVWriter(self._binary, schema)
        elif self.kind == "parquet":
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(self.path, schema)
        else:
            self._text = self.path.open("w", encoding="utf-8", newline="")

    def _conform(self, table: pa.Table) -> pa.Table:
        if table.schema.equals(self._schema):
            return table
        try:
            return table.cast(self._schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            raise UsageError(f"a column changes type from one chunk to the next ({exc}); "
                             "give that column one type") from exc

    def close(self) -> None:
        for closing in (self._csv, self._parquet, self._binary, self._text):
            if closing is not None:
                closing.close()


def _writable_schema(schema: pa.Schema) -> pa.Schema:
    """A column that is all missing in the first chunk (Arrow's null type) is written as text."""
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in schema])
