"""Shared fixtures of the flavor tests; Keras gets the torch backend unless the caller chose one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # before anything imports keras

import pandas as pd
import pytest
from sklearn.datasets import load_iris


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    """Iris: four float features with their names, and string labels."""
    data = load_iris(as_frame=True)
    labels = data.target.map(dict(enumerate(data.target_names)))
    return data.data, labels


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def tamper() -> Callable[[Path], None]:
    """Flip one byte in the middle of a file, as a corrupted copy or an edit would."""
    return _flip_byte


def _frameworks_imported(module: str, frameworks: tuple[str, ...]) -> list[str]:
    code = (f"import sys, {module}; from berth.flavors.base import all_flavors; all_flavors(); "
            f"print(','.join(m for m in {frameworks!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [name for name in result.stdout.strip().split(",") if name]


@pytest.fixture
def frameworks_imported() -> Callable[[str, tuple[str, ...]], list[str]]:
    """Import a flavor module (and load every flavor) in a fresh interpreter; name the frameworks that came."""
    return _frameworks_imported
