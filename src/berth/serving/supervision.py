"""Supervisor and workers watching each other: workers die with their supervisor, hung workers are replaced.

Three channels tie a worker to the supervisor that started it:

* **Lifeline** (supervisor -> worker): the worker's stdin stays open after the job is written. A thread in the
  worker blocks reading it; end-of-file means the supervisor is gone (even by SIGKILL: the kernel closes its
  descriptors), and the worker exits at once, closing its listening socket. On Linux the worker also asks the
  kernel for ``SIGKILL`` when its parent dies (``prctl(PR_SET_PDEATHSIG)``), which works even when the worker's
  own threads are stuck; the lifeline is the portable part (macOS has no parent-death signal).
* **Heartbeat** (worker -> supervisor): a pipe the worker writes one byte to every ``heartbeat_timeout_s / 5``
  from its event loop: ``R`` when it serves every model, ``S`` while it is starting or cannot serve. The beat
  stops when the event loop is blocked or the process is stopped (SIGSTOP), and the worker withholds it while a
  predict call has been running longer than ``timeout_s + heartbeat_timeout_s`` (every request waiting on it
  has had its 504 by then; the model's thread is stuck). The supervisor kills (SIGKILL) a worker whose beat is
  older than ``heartbeat_timeout_s`` and starts another. Until a worker first serves, the bound is the boot
  grace (``BOOT_GRACE_S``, or ``heartbeat_timeout_s`` if longer): imports and model loading hold the GIL and
  can starve the event loop for seconds on a busy machine.
* **Pool status** (supervisor -> every worker): a small JSON file, ``{"expected": N, "ready": K}``, rewritten
  atomically when it changes. ``/health/ready`` answers 200 only while every worker beats ``R``: a hung worker
  still holds its ``SO_REUSEPORT`` socket and the kernel keeps handing it connections until it is killed, so
  the instance is reported unready from the moment the worker misses a few beats (2.5 intervals) until its
  replacement serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import math
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from berth.processes import pid_alive

log = logging.getLogger("berth.serve")

PR_SET_PDEATHSIG = 1
BOOT_GRACE_S = 120.0  # a worker's first beat may take this long (imports), or heartbeat_timeout_s if longer
METRICS_PREFIX = "berth-metrics-"
STATUS_FILE = "workers.json"
LEGACY_EMPTY_AGE_S = 3600.0  # an ownerless, empty metrics directory older than this is stale
READY, STARTING = b"R", b"S"
STATE_POLL_S = 0.05  # how soon a worker's heartbeat follows a change of its state


# ---------------------------------------------------------------------------------------------- worker side


def die_with_parent(parent_pid: int, lifeline_fd: int) -> None:
    """Make this worker exit when its supervisor ``parent_pid`` dies, however it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the supervisor died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while True:
            try:
                data = os.read(lifeline_fd, 64)
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                log.error("supervisor %s is gone; worker %s exits", parent_pid, os.getpid())
                os._exit(1)

    threading.Thread(target=watch, name="berth-lifeline", daemon=True).start()


class Heartbeat:
    """Beats on ``fd`` from the event loop while the worker is healthy (see the module docstring)."""

    def __init__(self, fd: int, interval_s: float, stuck_after_s: float, state: Callable[[], bytes],
                 stuck_for: Callable[[], float]) -> None:
        self.fd = fd
        self.interval_s = interval_s
        self.stuck_after_s = stuck_after_s
        self.state = state
        self.stuck_for = stuck_for
        os.set_blocking(fd, False)

    def beat(self) -> bool:
        """One beat, unless a predict call is stuck; False when the supervisor has gone."""
        stuck = self.stuck_for()
        if stuck > self.stuck_after_s:
            log.error("a predict call has been running for %.0f s; withholding the heartbeat", stuck)
            return True
        try:
            os.write(self.fd, self.state())
        except BlockingIOError:  # the supervisor is behind reading; it will see later beats
            pass
        except (BrokenPipeError, OSError):
            return False
        return True

    async def run(self) -> None:
        """Beat every ``interval_s``, and at once when the state changes (a worker that has just loaded its models
        tells the supervisor now, not up to an interval later: readiness of the pool waits for that beat)."""
        sent: bytes | None = None
        last = -math.inf
        while True:
            state = self.state()
            if state != sent or time.monotonic() - last >= self.interval_s:
                if not self.beat():
                    log.error("supervisor is gone; worker %s exits", os.getpid())
                    os._exit(1)
                sent, last = state, time.monotonic()
            await asyncio.sleep(min(self.interval_s, STATE_POLL_S))


class PoolStatus:
    """A worker's view of the supervisor's pool status file (cached briefly: probes may come often)."""

    def __init__(self, path: str | os.PathLike[str], max_age_s: float = 0.1) -> None:
        self.path = Path(path)
        self.max_age_s = max_age_s
        self._read_at = -1e9
        self._state: dict[str, int] = {}

    def state(self) -> dict[str, int]:
        now = time.monotonic()
        if now - self._read_at > self.max_age_s:
            self._read_at = now
            try:
                raw = json.loads(self.path.read_text())
                self._state = {"expected": int(raw["expected"]), "ready": int(raw["ready"])}
            except (OSError, ValueError, KeyError, TypeError):
                self._state = {"expected": 0, "ready": 0}
        return self._state

    @property
    def all_ready(self) -> bool:
        state = self.state()
        return state["expected"] > 0 and state["ready"] >= state["expected"]


# ------------------------------------------------------------------------------------------ supervisor side


@dataclass
class Watch:
    """The supervisor's record of one worker's heartbeat."""

    fd: int
    started: float = field(default_factory=time.monotonic)
    last_beat: float | None = None
    state: bytes = STARTING
    served: bool = False  # has beaten READY at least once

    def read(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.last_beat = time.monotonic()
            self.state = data[-1:]
            self.served = self.served or READY in data

    def silent_for(self, timeout_s: float) -> float | None:
        """Seconds since the last beat (before the first: since the start) if that is too long, else None.

        Too long is ``timeout_s`` once the worker has served; before that (imports, loading models, which can
        starve the event loop on a busy machine) it is the boot grace.
        """
        silent = time.monotonic() - (self.started if self.last_beat is None else self.last_beat)
        limit = timeout_s if self.served else max(BOOT_GRACE_S, timeout_s)
        return silent if silent > limit else None

    def ready(self, timeout_s: float) -> bool:
        """Serving, and heard from within a few beat intervals (a silent worker counts as not ready well before
        it is killed at ``timeout_s``)."""
        if self.state != READY or self.last_beat is None:
            return False
        return time.monotonic() - self.last_beat <= min(timeout_s, 2.5 * heartbeat_interval(timeout_s))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def write_status(path: Path, expected: int, ready: int) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps({"expected": expected, "ready": ready}))
    os.replace(partial, path)


def make_metrics_dir() -> str:
    """A fresh multiprocess metrics directory named after this supervisor (so a later start can tell whether
    its owner still runs), after removing the stale ones that crashed supervisors left behind."""
    removed = clean_stale_metrics_dirs(Path(tempfile.gettempdir()))
    if removed:
        log.info("removed %d stale metrics directories of supervisors that are gone", len(removed))
    return tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")


def clean_stale_metrics_dirs(base: Path) -> list[Path]:
    """Remove this user's ``berth-metrics-*`` directories whose owner process is gone."""
    removed = []
    try:
        candidates = [p for p in base.iterdir() if p.name.startswith(METRICS_PREFIX)]
    except OSError:
        return []
    for path in candidates:
        try:
            info = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or info.st_uid != os.getuid() or not _is_stale(path, info):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _is_stale(path: Path, info: os.stat_result) -> bool:
    match = re.match(rf"{METRICS_PREFIX}(\d+)-", path.name)
    if match:
        return not pid_alive(int(match.group(1)))
    # a directory of an older berth, without the owner in its name: its files carry the workers' pids
    pids = {int(m.group(1)) for f in path.iterdir() if (m := re.search(r"_(\d+)\.db$", f.name))}
    if pids:
        return not any(pid_alive(pid) for pid in pids)
    return time.time() - info.st_mtime > LEGACY_EMPTY_AGE_S



def heartbeat_interval(timeout_s: float) -> float:
    return max(0.05, timeout_s / 5)

