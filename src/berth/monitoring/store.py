"""Where the prediction log lives: Parquet files partitioned by model and day, on a local disk or any fsspec URL.

Layout under the monitoring location (``BERTH_MONITOR_DIR``, else ``$BERTH_HOME/monitoring``, else
``~/.berth/monitoring``; a directory or a URL such as ``s3://bucket/prefix``)::

    <model>/predictions/date=2024-05-01/part-<time>-<host>-<pid>-<seq>.parquet   one file per flushed batch
    <model>/feedback/date=2024-05-01/part-....parquet                            true labels, joined by request id
    <model>/versions/<version>.json                                              reference, signature, metrics

Every writer (each worker process, pod, Ray replica or host) writes its own immutable files under a unique name
(UTC time, host name, pid and a per-process sequence). Locally a file is written under a temporary name and
renamed; an object store makes an object visible only once its upload completes. So writers never share a file,
readers never see half of one, and any number of processes can write to one shared location: readers take the
union. A query reads only the day partitions that overlap its time window and filters rows on ``time``.

Compaction merges a finished day's files into one ``compact-*.parquet`` whose metadata names the files it
replaces; the inputs are deleted only after it is written. A reader that lists both ignores the replaced files,
and a reader that loses a file between listing and reading lists again: compaction is safe while servers write
and reports read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from berth import config, names, storage
from berth.errors import StorageError, UsageError
from berth.names import check_model_name, is_model_name

if TYPE_CHECKING:
    import pyarrow.dataset as ds  # imported where a log is read: it imports pandas, which a server does not need

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
VERSIONS = "versions"
FEATURE_PREFIX = "feature."
REPLACES_KEY = b"berth.replaces"  # in a compacted file's metadata: the names of the files it replaces
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_DATA_FILE = re.compile(r"^(part|compact)-[^/]*\.parquet$")
_HOST = re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:40] or "host"
_SEQUENCE = itertools.count()
_SEQUENCE_LOCK = threading.Lock()
READ_ATTEMPTS = 4
log = logging.getLogger("berth.monitor")
T = TypeVar("T")


def monitor_dir() -> str:
    """The monitoring location (:func:`berth.config.monitor_dir`): ``BERTH_MONITOR_DIR`` (a directory or an
    fsspec URL), else ``$BERTH_HOME/monitoring``, else ``~/.berth/monitoring``."""
    return config.monitor_dir()


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def check_name(model: str) -> str:
    """The model-name rule of :mod:`berth.names` (the name is a directory here)."""
    return check_model_name(model)


def check_version(version: str) -> str:
    """A version names a file under ``<model>/versions/``: it must pass the version rule (berth.names)."""
    problem = names.version_problem(version)
    if problem:
        raise UsageError(f"invalid model version: {problem}")
    return version


def inside(root: str | Path, path: str | Path) -> str:
    """A local ``path``, checked to stay under ``root`` once resolved (no component links out of the store)."""
    if not Path(path).resolve().is_relative_to(Path(root).resolve()):
        raise UsageError(f"{path} is outside the monitoring store {root}")
    return str(path)


def file_name(prefix: str = "part") -> str:
    """A name no other writer uses: UTC time, host, pid and this process's sequence number."""
    with _SEQUENCE_LOCK:
        sequence = next(_SEQUENCE)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"{prefix}-{stamp}-{_HOST}-{os.getpid()}-{sequence:06d}.parquet"


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class Store:
    """Prediction log and feedback of every model, as Parquet files under ``root`` (a directory or a URL)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        text = str(root) if root is not None else monitor_dir()
        self.remote = storage.is_remote(text)
        self.root: Path | str
        if self.remote:
            self.root = text.rstrip("/")
            self.fs, self.base = storage.filesystem(self.root)
            self.base = self.base.rstrip("/")
        else:
            import fsspec

            self.root = storage.local_path(text)
            self.fs = fsspec.filesystem("file")
            self.base = str(self.root.absolute())
        self._replaced: dict[str, frozenset[str]] = {}  # compacted file -> the names it replaces (immutable)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def path(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def location(self, *parts: str) -> str:
        """``parts`` under the root, as shown to people (the URL for an object store)."""
        return "/".join([str(self.root), *parts])

    # ------------------------------------------------------------------ writing

    def write(self, model: str, table: pa.Table, kind: str = PREDICTIONS) -> list[str]:
        """Append ``table`` (with a ``time`` column) to ``model``'s log: one new file per day it touches."""
        check_name(model)
        if table.num_rows == 0:
            return []
        days = pc.strftime(table["time"], format="%Y-%m-%d")
        unique = pc.unique(days).to_pylist()
        written = []
        for day in sorted(unique):
            part = table if len(unique) == 1 else table.filter(pc.equal(days, day))
            written.append(self._write_file(self.path(model, kind, f"date={day}"), part))
        return written

    def _write_file(self, directory: str, table: pa.Table, name: str | None = None,
                    metadata: dict[bytes, bytes] | None = None) -> str:
        name = name or file_name()
        if metadata:
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
        final = f"{directory}/{name}"
        if self.remote:  # an object appears whole once its upload completes
            with self.fs.open(final, "wb") as handle:
                pq.write_table(table, handle, compression="zstd")
            return final
        Path(inside(self.base, directory)).mkdir(parents=True, exist_ok=True)  # no link leads out of the store
        temporary = f"{directory}/.{name}.tmp"
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, final)
        return final

    def probe(self) -> str | None:
        """Write and remove a small file where the log goes: None when that works, else the reason it does not
        (checked once at server startup, so a log that cannot be written is said at once, not only counted)."""
        path = self.path(f".probe-{_HOST}-{os.getpid()}")
        try:
            if not self.remote:
                Path(self.base).mkdir(parents=True, exist_ok=True)
            self.fs.pipe_file(path, b"")
            self.fs.rm_file(path)
        except Exception as exc:  # any store's error: permissions, no bucket, no credentials, a file in the way
            return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).splitlines()[0]
        return None

    def save_version(self, model: str, version: str, info: dict[str, Any]) -> None:
        """Keep what analysis needs of a served version (reference statistics, signature, metrics)."""
        directory = self.path(check_name(model), VERSIONS)
        version = check_version(version)  # it names a file: the bundle it came from is not trusted
        data = json.dumps({**info, "saved_at": dt.datetime.now(dt.UTC).isoformat()}, default=str).encode()
        if self.remote:
            self.fs.pipe_file(f"{directory}/{version}.json", data)
            return
        Path(inside(self.base, directory)).mkdir(parents=True, exist_ok=True)
        final = inside(self.base, f"{directory}/{version}.json")
        temporary = f"{directory}/.{version}.{uuid.uuid4().hex}.tmp"  # unique: threads of one process race too
        Path(temporary).write_bytes(data)
        os.replace(temporary, final)

    # ------------------------------------------------------------------ listing

    def _ls(self, directory: str) -> list[str]:
        """Entries of ``directory`` (full paths), fresh from the store; empty when it does not exist."""
        if not self.remote:
            try:
                return [f"{directory}/{name}" for name in os.listdir(directory)]
            except (FileNotFoundError, NotADirectoryError):
                return []
        self.fs.invalidate_cache(directory)
        try:
            return [entry.rstrip("/") for entry in self.fs.ls(directory, detail=False)]
        except FileNotFoundError:
            return []

    def models(self) -> list[str]:
        found = []
        for entry in self._ls(self.base):
            name = _basename(entry)
            if is_model_name(name) and self._ls(f"{entry}/{PREDICTIONS}"):
                found.append(name)
        return sorted(found)

    def versions(self, model: str) -> dict[str, dict[str, Any]]:
        """Version info by version, oldest first (by when a server last saved it)."""
        infos = []
        for path in self._ls(self.path(check_name(model), VERSIONS)):
            if not path.endswith(".json") or _basename(path).startswith("."):
                continue
            try:
                info = json.loads(self.fs.cat_file(path))
            except (FileNotFoundError, ValueError):
                continue
            infos.append((str(info.get("saved_at", "")), _basename(path).removesuffix(".json"), info))
        return {version: info for _, version, info in sorted(infos, key=lambda item: (item[0], item[1]))}

    def days(self, model: str, kind: str = PREDICTIONS) -> list[tuple[str, dt.date]]:
        """The day partitions of ``model``'s ``kind``: (directory, day), oldest first."""
        found = []
        for entry in self._ls(self.path(check_name(model), kind)):
            match = _DAY.match(_basename(entry))
            if match:
                found.append((entry, dt.date.fromisoformat(match.group(1))))
        return sorted(found, key=lambda item: item[1])

    def files(self, model: str, kind: str = PREDICTIONS, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> list[str]:
        """The data files of the day partitions that overlap [since, until), without files a compacted file
        replaces."""
        first = utc(since).date() if since else None
        last = utc(until).date() if until else None
        found: list[str] = []
        for directory, day in self.days(model, kind):
            if (first and day < first) or (last and day > last):
                continue
            found.extend(self._day_files(directory))
        return found

    def _day_files(self, directory: str) -> list[str]:
        entries = sorted(p for p in self._ls(directory) if _DATA_FILE.match(_basename(p)))
        replaced: set[str] = set()
        for path in entries:
            if _basename(path).startswith("compact-"):
                replaced |= self._replaces(path)
        return [p for p in entries if _basename(p) not in replaced]

    def _replaces(self, path: str) -> frozenset[str]:
        if path not in self._replaced:
            try:
                metadata = pq.read_schema(path, filesystem=None if not self.remote else self.fs).metadata or {}
            except FileNotFoundError:
                return frozenset()
            self._replaced[path] = frozenset(json.loads(metadata.get(REPLACES_KEY, b"[]")))
        return self._replaced[path]

    # ------------------------------------------------------------------ reading

    def retrying(self, action: Callable[[], T]) -> T:
        """Run ``action`` (which lists and reads files), again when a file vanished in between (compaction)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return action()
            except FileNotFoundError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
                log.debug("a log file vanished while reading (compaction); listing again")
        raise AssertionError("unreachable")

    def schema(self, files: list[str]) -> pa.Schema:
        fs = self.fs if self.remote else None
        try:
            return pa.unify_schemas([pq.read_schema(f, filesystem=fs) for f in files], promote_options="permissive")
        except (pa.ArrowInvalid, OSError) as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise StorageError(f"cannot read the monitoring log under {self.root}: {exc}") from exc

    def dataset(self, files: list[str], schema: pa.Schema | None = None) -> ds.Dataset:
        import pyarrow.dataset as ds

        return ds.dataset(files, schema=schema or self.schema(files), format="parquet",
                          filesystem=self.fs if self.remote else None)

    def window(self, model: str, since: dt.datetime | None = None, until: dt.datetime | None = None, *,
               version: str | None = None, kind: str = PREDICTIONS,
               served_only: bool = False) -> tuple[ds.Dataset | None, Any]:
        """The dataset of the window's files and the row filter (for streaming scans); (None, None) if empty.

        ``served_only`` keeps the answers callers got: no shadow rows, no failed requests (as
        :func:`berth.monitoring.log.served_rows` does for a table; files written before those columns have
        neither)."""
        import pyarrow.dataset as ds

        files = self.files(model, kind, since, until)
        if not files:
            return None, None
        dataset = self.dataset(files)
        present = set(dataset.schema.names)
        condition = None
        for clause in (
            ds.field("time") >= pa.scalar(utc(since), pa.timestamp("us", tz="UTC")) if since else None,
            ds.field("time") < pa.scalar(utc(until), pa.timestamp("us", tz="UTC")) if until else None,
            ds.field("version") == version if version else None,
            ds.field("shadow").is_null() | (ds.field("shadow") == pa.scalar(False))
            if served_only and "shadow" in present else None,
            ds.field("error").is_null() if served_only and "error" in present else None,
        ):
            if clause is not None:
                condition = clause if condition is None else condition & clause
        return dataset, condition

    def read(self, model: str, since: dt.datetime | None = None, until: dt.datetime | None = None, *,
             version: str | None = None, columns: list[str] | None = None, kind: str = PREDICTIONS) -> pa.Table:
        """Rows of ``model``'s log with ``since <= time < until`` (and of ``version``), oldest first."""

        import pyarrow.dataset as ds

        def attempt() -> pa.Table:
            files = self.files(model, kind, since, until)
            if not files:
                return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC"))})
            schema = self.schema(files)
            condition = None
            for clause in (
                ds.field("time") >= pa.scalar(utc(since), pa.timestamp("us", tz="UTC")) if since else None,
                ds.field("time") < pa.scalar(utc(until), pa.timestamp("us", tz="UTC")) if until else None,
                ds.field("version") == version if version else None,
            ):
                if clause is not None:
                    condition = clause if condition is None else condition & clause
            wanted = None if columns is None else [c for c in columns if c in schema.names]
            return self.dataset(files, schema).to_table(columns=wanted, filter=condition)

        table = self.retrying(attempt)
        if "time" in table.column_names and table.num_rows:
            table = table.sort_by("time")
        return table

    def feedback(self, model: str) -> pa.Table:
        """Every label received for ``model``, oldest first; for a (request id, row) given twice, the latest
        wins (the later file for equal times). One sort of the times and one take: 1,000,000 labels are
        ~50 MB, and a sorted copy, a deduplicated copy and pandas on top made them ~400 MB."""
        table = self.retrying(lambda: self._read_unsorted(model, FEEDBACK))
        if table.num_rows == 0:
            return table
        order = pc.sort_indices(table["time"]).to_numpy()  # stable: equal times keep the files' order
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        keys = [k for k in ("request_id", "row") if k in table.column_names]
        numbered = table.select(keys).append_column("rank", pa.array(rank))
        latest = numbered.group_by(keys, use_threads=False).aggregate([("rank", "max")])["rank_max"].to_numpy()
        return table.take(order[np.sort(latest)])

    def _read_unsorted(self, model: str, kind: str) -> pa.Table:
        files = self.files(model, kind)
        if not files:
            return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC"))})
        return self.dataset(files).to_table()

    # ------------------------------------------------------------------ retention

    def prune(self, model: str, older_than: dt.timedelta, now: dt.datetime | None = None) -> list[str]:
        """Delete whole days of ``model``'s log and feedback older than ``older_than``; returns the days."""
        cutoff = (utc(now or dt.datetime.now(dt.UTC)) - older_than).date()
        removed = set()
        for kind in (PREDICTIONS, FEEDBACK):
            for directory, day in self.days(model, kind):
                if day < cutoff:
                    self.fs.rm(directory, recursive=True)
                    removed.add(day.isoformat())
        return sorted(removed)

    def compact(self, model: str, before: dt.date | None = None) -> int:
        """Merge the files of each finished day (before ``before``, default today) into one; returns how many
        files were merged. The merged file is written first, naming the files it replaces; then they are
        deleted. Safe while servers write (a finished day gets no new files; a late one is merged next time)
        and while reports read. Run one compaction of a model at a time."""
        before = before or dt.datetime.now(dt.UTC).date()
        merged = 0
        for kind in (PREDICTIONS, FEEDBACK):
            for directory, day in self.days(model, kind):
                if day >= before:
                    continue
                parts = self._day_files(directory)
                if len(parts) < 2:
                    continue
                table = self.dataset(parts).to_table().sort_by("time")
                names = sorted(_basename(p) for p in parts)
                self._write_file(directory, table, file_name("compact"), {REPLACES_KEY: json.dumps(names).encode()})
                for part in parts:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(part)
                merged += len(parts)
        return merged


MAX_DURATION_S = 100 * 365 * 86400  # spans past this overflow dates and mean nothing


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``24h``, ``15m``, ``90s``, ``2w`` as a time span."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 24h, 15m")
    amount, unit = float(match.group(1)), match.group(2)
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if seconds > MAX_DURATION_S:
        raise UsageError(f"invalid duration {text!r}: at most {MAX_DURATION_S // 86400 // 365} years")
    return dt.timedelta(seconds=seconds)
