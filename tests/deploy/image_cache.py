"""A cache of stand-in image roots for test_container_env.py, keyed by what the build stage installs.

Playing the Dockerfile's build stage makes a virtual environment and pip-installs the bundle's pinned libraries
(numpy, pandas, scikit-learn...) into it: a minute or two, for a result that only changes when the pins do. So
the stand-in root is kept under ``$BERTH_TEST_CACHE`` (default ``~/.cache/berth-tests``), in a slot named by a
hash of the build stage's instructions, requirements.txt without berth's own line, and the Python version. A
later run plays the same Dockerfile, as written, into the kept root, the way Docker's layer cache keeps a layer:
``python -m venv`` and ``pip install -r requirements.txt`` run again and find the pins installed. Everything but
the venv is removed first, and berth is uninstalled from it, so the image holds this run's wheel and bundle. A
slot is locked (``flock``) while a test session uses it; the newest ``KEEP`` slots are kept, older ones removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.dockerfile_checks import stages

KEEP = 3


def cache_root() -> Path:
    """``$BERTH_TEST_CACHE``, else ``$XDG_CACHE_HOME/berth-tests``, else ``~/.cache/berth-tests``."""
    configured = os.environ.get("BERTH_TEST_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "berth-tests"


def environment_key(context: Path) -> str:
    """What the build stage's result depends on, berth's own wheel aside."""
    build = stages((context / "Dockerfile").read_text())[0]
    requirements = [line.strip() for line in (context / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#") and "berth" not in line.lower()]
    parts = [repr(build.instructions), *requirements, sys.version]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


@dataclass
class Slot:
    root: Path  # the stand-in image root
    reused: bool  # a previous run's build stage is there


@contextmanager
def image_root(context: Path) -> Iterator[Slot]:
    """The root to play ``context``'s Dockerfile into, locked for as long as the caller uses it. Mark it
    complete with ``mark_complete`` once the build stage succeeded, or it is rebuilt from scratch next time."""
    base = cache_root() / "container-env"
    slot = base / environment_key(context)
    slot.mkdir(parents=True, exist_ok=True)
    with open(slot / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        root, complete = slot / "root", slot / "complete"
        reused = complete.is_file() and (root / "opt" / "venv" / "bin" / "python").exists()
        complete.unlink(missing_ok=True)
        if reused:  # only the venv stays; the image must hold this run's berth, not the one installed before
            venv = root / "opt" / "venv"
            for path in [*root.iterdir(), *(root / "opt").iterdir()]:
                if path not in (root / "opt", venv):
                    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "uninstall", "--yes", "--quiet", "berth"],
                           check=True, capture_output=True, timeout=120)
        else:
            shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        _prune(base, keep=slot)
        yield Slot(root, reused)


def mark_complete(slot: Slot) -> None:
    (slot.root.parent / "complete").touch()


def _prune(base: Path, keep: Path) -> None:
    """Remove all but the ``KEEP`` most recently used slots (never ``keep``, never one in use)."""
    slots = sorted((p for p in base.iterdir() if p.is_dir() and p != keep),
                   key=lambda p: (p / "lock").stat().st_mtime if (p / "lock").exists() else 0, reverse=True)
    for old in slots[KEEP - 1:]:
        with open(old / "lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(old, ignore_errors=True)
