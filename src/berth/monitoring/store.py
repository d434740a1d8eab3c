"""Where the prediction log lives: Parquet files partitioned by model and day, read with ``pyarrow.dataset``.

Layout under the monitoring directory (``BERTH_MONITOR_DIR``, else ``$BERTH_HOME/monitoring``, else
``~/.berth/monitoring``)::

    <model>/predictions/date=2024-05-01/part-<time>-<pid>-<random>.parquet   one file per flushed batch
    <model>/feedback/date=2024-05-01/part-....parquet                         true labels, joined by request id
    <model>/versions/<version>.json                                           reference, signature, metrics

Every writer (each worker process of ``berth serve --workers N``) writes its own files under a unique name,
through a temporary name and ``rename``, so readers never see half a file and writers never share one.
A query reads only the day partitions that overlap its time window (partition pruning) and then filters rows
on ``time`` (predicate pushdown into Parquet's row-group statistics).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from berth.errors import StorageError, UsageError

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
VERSIONS = "versions"
FEATURE_PREFIX = "feature."
_DAY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def monitor_dir() -> Path:
    """The monitoring directory: ``BERTH_MONITOR_DIR``, else ``$BERTH_HOME/monitoring``, else ``~/.berth/...``."""
    explicit = os.environ.get("BERTH_MONITOR_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("BERTH_HOME") or Path.home() / ".berth").expanduser() / "monitoring"


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def check_name(model: str) -> str:
    if not _NAME.match(model):
        raise UsageError(f"invalid model name {model!r}: use letters, digits, '.', '_' and '-'")
    return model


class Store:
    """Prediction log and feedback of every model, as Parquet files under ``root``."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else monitor_dir()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ writing

    def write(self, model: str, table: pa.Table, kind: str = PREDICTIONS) -> list[Path]:
        """Append ``table`` (with a ``time`` column) to ``model``'s log: one new file per day it touches."""
        check_name(model)
        if table.num_rows == 0:
            return []
        days = pc.strftime(table["time"], format="%Y-%m-%d").to_pylist()
        written = []
        for day in sorted(set(days)):
            part = table if len(set(days)) == 1 else table.filter(pa.array([d == day for d in days]))
            written.append(self._write_file(self.root / model / kind / f"date={day}", part))
        return written

    @staticmethod
    def _write_file(directory: Path, table: pa.Table) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        name = f"part-{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = directory / f".{name}.tmp"
        pq.write_table(table, temporary, compression="zstd")
        final = directory / name
        os.replace(temporary, final)
        return final

    def probe(self) -> str | None:
        """Write and remove a small file where the log goes: None when that works, else the reason it does not
        (checked once at server startup, so a log that cannot be written is said at once, not only counted)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / f".probe-{socket.gethostname()}-{os.getpid()}"
            path.write_bytes(b"")
            path.unlink()
        except OSError as exc:
            return exc.strerror or str(exc)
        return None

    def save_version(self, model: str, version: str, info: dict[str, Any]) -> None:
        """Keep what analysis needs of a served version (reference statistics, signature, metrics)."""
        directory = self.root / check_name(model) / VERSIONS
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{version}.json"
        temporary = directory / f".{version}.{os.getpid()}.tmp"
        temporary.write_text(json.dumps(info, default=str))
        os.replace(temporary, path)

    # ------------------------------------------------------------------ reading

    def models(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and (p / PREDICTIONS).is_dir())

    def versions(self, model: str) -> dict[str, dict[str, Any]]:
        """Version info by version, oldest first (by file time)."""
        directory = self.root / check_name(model) / VERSIONS
        if not directory.is_dir():
            return {}
        files = sorted(directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
        return {p.stem: json.loads(p.read_text()) for p in files}

    def files(self, model: str, kind: str = PREDICTIONS, since: dt.datetime | None = None,
              until: dt.datetime | None = None) -> list[Path]:
        """The files of the day partitions that overlap [since, until)."""
        directory = self.root / check_name(model) / kind
        if not directory.is_dir():
            return []
        first = utc(since).date() if since else None
        last = utc(until).date() if until else None
        found = []
        for day_dir in sorted(directory.iterdir()):
            match = _DAY.match(day_dir.name)
            if not match:
                continue
            day = dt.date.fromisoformat(match.group(1))
            if (first and day < first) or (last and day > last):
                continue
            found.extend(sorted(day_dir.glob("part-*.parquet")))
        return found

    def read(self, model: str, since: dt.datetime | None = None, until: dt.datetime | None = None, *,
             version: str | None = None, columns: list[str] | None = None, kind: str = PREDICTIONS,
             request_ids: pa.Array | None = None) -> pa.Table:
        """Rows of ``model``'s log with ``since <= time < until`` (and of ``version``, and among
        ``request_ids``), oldest first."""
        files = self.files(model, kind, since, until)
        if not files:
            return pa.table({"time": pa.array([], pa.timestamp("us", tz="UTC"))})
        try:
            schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
        except (pa.ArrowInvalid, OSError) as exc:
            raise StorageError(f"cannot read the monitoring log of {model!r} under {self.root}: {exc}") from exc
        dataset = ds.dataset([str(f) for f in files], schema=schema, format="parquet")
        condition = None
        for clause in (
            ds.field("time") >= pa.scalar(utc(since), pa.timestamp("us", tz="UTC")) if since else None,
            ds.field("time") < pa.scalar(utc(until), pa.timestamp("us", tz="UTC")) if until else None,
            ds.field("version") == version if version else None,
            ds.field("request_id").isin(request_ids) if request_ids is not None else None,
        ):
            if clause is not None:
                condition = clause if condition is None else condition & clause
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        table = dataset.to_table(columns=wanted, filter=condition)
        if "time" in table.column_names and table.num_rows:
            table = table.sort_by("time")
        return table

    def feedback(self, model: str) -> pa.Table:
        """Every label received for ``model``; for a (request id, row) given twice, the latest wins."""
        table = self.read(model, kind=FEEDBACK)
        if table.num_rows == 0:
            return table
        frame = table.to_pandas()
        frame = frame.sort_values("time").drop_duplicates(["request_id", "row"], keep="last")
        return pa.Table.from_pandas(frame, preserve_index=False)

    # ------------------------------------------------------------------ retention

    def prune(self, model: str, older_than: dt.timedelta, now: dt.datetime | None = None) -> list[str]:
        """Delete whole days of ``model``'s log and feedback older than ``older_than``; returns the days."""
        cutoff = (utc(now or dt.datetime.now(dt.UTC)) - older_than).date()
        removed = set()
        for kind in (PREDICTIONS, FEEDBACK):
            for day_dir, day in self._days(model, kind):
                if day < cutoff:
                    shutil.rmtree(day_dir)
                    removed.add(day.isoformat())
        return sorted(removed)

    def compact(self, model: str, before: dt.date | None = None) -> int:
        """Merge the many small files of each finished day (before ``before``, default today) into one."""
        before = before or dt.datetime.now(dt.UTC).date()
        merged = 0
        for kind in (PREDICTIONS, FEEDBACK):
            for day_dir, day in self._days(model, kind):
                parts = sorted(day_dir.glob("part-*.parquet"))
                if day >= before or len(parts) < 2:
                    continue
                schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
                table = ds.dataset([str(p) for p in parts], schema=schema, format="parquet").to_table()
                self._write_file(day_dir, table.sort_by("time"))
                for part in parts:
                    part.unlink()
                merged += len(parts)
        return merged

    def _days(self, model: str, kind: str) -> Iterator[tuple[Path, dt.date]]:
        directory = self.root / check_name(model) / kind
        if not directory.is_dir():
            return
        for day_dir in sorted(directory.iterdir()):
            match = _DAY.match(day_dir.name)
            if match:
                yield day_dir, dt.date.fromisoformat(match.group(1))


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``24h``, ``15m``, ``90s``, ``2w`` as a time span."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text or "")
    if not match:
        raise UsageError(f"invalid duration {text!r}: use a number and a unit, e.g. 30d, 24h, 15m")
    amount, unit = float(match.group(1)), match.group(2)
    return dt.timedelta(seconds=amount * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit])
