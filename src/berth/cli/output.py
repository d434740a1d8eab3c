"""Machine-readable output: what ``--json`` prints (kept apart from render.py so it costs no rich import)."""

from __future__ import annotations

import json
import sys
from typing import Any


def print_json(value: Any) -> None:
    """One JSON document on stdout, for the ``--json`` option of the commands."""
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")
