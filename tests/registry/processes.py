"""Registrations in real, separate processes, forked from a preloaded fork server instead of started afresh.

A fresh interpreter spends seconds importing berth, SQLAlchemy, Alembic, psycopg and s3fs before it registers
anything; the concurrency and crash tests start 58 of them. Here a ``multiprocessing`` fork server imports all
that once (it is started by the first worker, from a clean interpreter: it shares no state with pytest's
process), and each worker is a fork of it: its own process, its own pid, database connections and files, which
can die with ``os._exit`` or be killed with SIGKILL like any other. Each worker gets the environment of the test
at the time it starts (not the fork server's), writes what it prints to files, and ends with its exit code.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# What ``tests.registry.worker`` uses, imported once by the fork server (a module that is missing is skipped).
PRELOAD = [
    "tests.registry.worker",
    "berth.registry.database",
    "berth.registry.artifacts",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.script",
    "mako.template",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "s3fs",
]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


@dataclass
class Worker:
    """One registering process: a ``multiprocessing.Process`` of the fork server, its output in two files."""

    process: multiprocessing.process.BaseProcess
    stdout: Path
    stderr: Path

    def kill(self) -> None:
        self.process.kill()

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        """Wait for the process; its exit code, and what it wrote to stdout and stderr."""
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join(10)
            raise TimeoutError(f"worker {self.process.pid} still running after {timeout} s")
        return self.process.exitcode, self.stdout.read_text(), self.stderr.read_text()


def start_worker(url: str, artifacts: str, bundle: Path, name: str, *, scratch: Path, go: Path | None = None,
                 fault: str | None = None) -> Worker:
    """``python -m tests.registry.worker URL ARTIFACTS BUNDLE NAME [GO]``, as a fork of the preloaded server;
    ``fault`` is passed to the worker (see ``tests/registry/worker.py``)."""
    scratch.mkdir(parents=True, exist_ok=True)
    index = len(list(scratch.glob("worker-*.out")))
    stdout, stderr = scratch / f"worker-{index}.out", scratch / f"worker-{index}.err"
    stdout.touch()
    stderr.touch()
    args = [url, artifacts, str(bundle), name, *([str(go)] if go else [])]
    process = _context.Process(target=_run, args=(args, fault, dict(os.environ), str(stdout), str(stderr)),
                               name=f"registry-worker-{index}")
    process.start()
    return Worker(process, stdout, stderr)


def _run(args: list[str], fault: str | None, env: dict[str, str], stdout: str, stderr: str) -> None:
    """In the forked worker: the test's environment, stdout and stderr into files, then the worker's main."""
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, stdout), (2, stderr)):
        target = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(target, fd)
        os.close(target)
    from tests.registry import worker

    try:
        worker.main(*args, fault=fault)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
