"""``berth monitor check --on-fail COMMAND``: when the check fails, run a command (say, retraining) with what it
needs in its environment.

The command line is split like a shell would (``shlex``) but run without a shell (use ``sh -c '...'`` for pipes);
it gets the current environment plus:

=========================  =================================================================================
``BERTH_CHECK_MODEL``      the model's name
``BERTH_CHECK_VERSION``    the version checked (``--version``, else the one that answered most in the window)
``BERTH_CHECK_FAILED``     what failed, one problem per line
``BERTH_CHECK_SINCE``      the window (``24h``)
``BERTH_CHECK_INPUTS``     a Parquet file: the window's logged inputs the callers got answers for (request_id,
                           row, time, version, prediction, one column per feature)
``BERTH_CHECK_LABELS``     a Parquet file: the labels received for those rows (request_id, row, label)
``BERTH_CHECK_REPORT``     a JSON file: the verdict (problems, notes, rows)
=========================  =================================================================================

The files live in a temporary directory removed when the command ends. The command's exit status is reported;
it runs for at most ``timeout_s``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from berth.errors import UsageError
from berth.monitoring.log import served_rows
from berth.monitoring.store import FEATURE_PREFIX, Store


def split_command(command: str) -> list[str]:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise UsageError(f"--on-fail: cannot split {command!r}: {exc}") from None
    if not argv:
        raise UsageError("--on-fail needs a command")
    return argv


def window_files(store: Store, model: str, since: dt.datetime, version: str | None,
                 directory: Path) -> tuple[Path, Path, str | None]:
    """Write the window's served inputs and their labels as Parquet under ``directory``; returns the paths and
    the version (given, or the one that answered most rows)."""
    table = served_rows(store.read(model, since, None, version=version))
    keep = [c for c in ("request_id", "row", "time", "version", "prediction") if c in table.column_names]
    keep += [c for c in table.column_names if c.startswith(FEATURE_PREFIX)]
    inputs = table.select(keep)
    inputs = inputs.rename_columns([c.removeprefix(FEATURE_PREFIX) for c in inputs.column_names])
    if version is None and inputs.num_rows:
        counts = pc.value_counts(inputs["version"]).to_pylist()
        version = str(max(counts, key=lambda item: item["counts"])["values"])
    labels = store.feedback(model)
    if labels.num_rows and inputs.num_rows:
        labels = labels.filter(pc.is_in(labels["request_id"], value_set=pc.unique(inputs["request_id"])))
        labels = labels.select(["request_id", "row", "label"])
    else:
        labels = pa.table({"request_id": pa.array([], pa.string()), "row": pa.array([], pa.int32()),
                           "label": pa.array([], pa.string())})
    inputs_path, labels_path = directory / "inputs.parquet", directory / "labels.parquet"
    pq.write_table(inputs, inputs_path)
    pq.write_table(labels, labels_path)
    return inputs_path, labels_path, version


def run_on_fail(command: str, *, store: Store, model: str, since: dt.datetime, window: str, version: str | None,
                problems: list[str], verdict: dict[str, Any], timeout_s: float) -> int:
    """Run ``command`` for a failed check (see the module's docstring); returns its exit status."""
    argv = split_command(command)
    with tempfile.TemporaryDirectory(prefix="berth-check-") as temporary:
        directory = Path(temporary)
        inputs, labels, version = window_files(store, model, since, version, directory)
        report = directory / "verdict.json"
        report.write_text(json.dumps(verdict, indent=2, default=str))
        env = {**os.environ, "BERTH_CHECK_MODEL": model, "BERTH_CHECK_VERSION": version or "",
               "BERTH_CHECK_FAILED": "\n".join(problems), "BERTH_CHECK_SINCE": window,
               "BERTH_CHECK_INPUTS": str(inputs), "BERTH_CHECK_LABELS": str(labels),
               "BERTH_CHECK_REPORT": str(report)}
        try:
            return subprocess.run(argv, env=env, timeout=timeout_s, check=False).returncode
        except FileNotFoundError:
            raise UsageError(f"--on-fail: no such command {argv[0]!r}") from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"--on-fail: {argv[0]} did not finish within {timeout_s:g} s "
                             "(--on-fail-timeout)") from None
