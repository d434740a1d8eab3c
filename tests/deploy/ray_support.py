"""Shared by the Ray tests: skip without Ray locally, fail under CI=true (where Ray is part of the install)."""

from __future__ import annotations

import importlib.util
import os

import pytest


def require_ray(*modules: str) -> None:
    """Skip (or, under CI=true, fail) when Ray or one of ``modules`` is not installed."""
    missing = [name for name in ("ray", *modules) if not _installed(name)]
    if not missing:
        return
    reason = f"needs {', '.join(missing)}: pip install 'berth[ray]'"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
