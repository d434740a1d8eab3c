"""berth's version, read from the installed distribution's metadata: ``pyproject.toml`` is its one source."""

from __future__ import annotations

import functools
from importlib import metadata


@functools.cache
def version() -> str:
    try:
        return metadata.version("berth")
    except metadata.PackageNotFoundError:  # a source tree on sys.path that was never installed
        return "0+unknown"
