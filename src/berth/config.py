"""Process-level configuration: every ``BERTH_*`` variable berth reads outside the server's settings.

Each function reads the environment when it is called (never at import), so a test or a long-lived process sees
the value of the moment; a bad value raises :class:`~berth.errors.UsageError` naming the variable. The server's
own settings (``BERTH_PORT``, ``BERTH_WORKERS``, ...) are the typed fields of
:class:`berth.serving.settings.ServeSettings`. Every variable of both is listed in one table in
``docs/operations.md``; ``tests/test_settings_documented.py`` fails when one is read but not listed there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from berth.errors import UsageError

HOME = "BERTH_HOME"
REGISTRY_URL = "BERTH_REGISTRY_URL"
ARTIFACTS_URL = "BERTH_ARTIFACTS_URL"
MONITOR_DIR = "BERTH_MONITOR_DIR"
S3_ENDPOINT_URL = "BERTH_S3_ENDPOINT_URL"
SKLEARN_MATRIX = "BERTH_SKLEARN_MATRIX"
ARCHIVE_MAX_BYTES = "BERTH_ARCHIVE_MAX_BYTES"
ARCHIVE_MAX_FILES = "BERTH_ARCHIVE_MAX_FILES"

DEFAULT_HOME = "~/.berth"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def _get(name: str, environ: Mapping[str, str] | None) -> str | None:
    """The variable's value, stripped; None when it is unset or empty (empty means: use the default)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def flag(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off (any case); anything else is refused."""
    value = _get(name, environ)
    if value is None:
        return default
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise UsageError(f"{name}={value!r} is not a boolean: use 1, true, yes, on or 0, false, no, off")


def positive_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    """A whole number of at least 1; anything else is refused."""
    value = _get(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise UsageError(f"{name}={value!r}: expected a whole number") from None
    if number < 1:
        raise UsageError(f"{name}={value!r}: expected a positive number")
    return number


def url(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A variable holding a URL (``scheme://...``); a value without a scheme is refused."""
    value = _get(name, environ)
    if value is not None and "://" not in value:
        raise UsageError(f"{name}={value!r} is not a URL (scheme://...)")
    return value


def home(environ: Mapping[str, str] | None = None) -> Path:
    """``BERTH_HOME``, else ``~/.berth``: where the default registry, artifacts and monitoring directory live."""
    return Path(_get(HOME, environ) or DEFAULT_HOME).expanduser()


def registry_url(environ: Mapping[str, str] | None = None) -> str:
    """``BERTH_REGISTRY_URL``, else SQLite at ``$BERTH_HOME/registry.db``."""
    return url(REGISTRY_URL, environ) or f"sqlite:///{home(environ).absolute() / 'registry.db'}"


def artifacts_url(environ: Mapping[str, str] | None = None) -> str:
    """``BERTH_ARTIFACTS_URL`` (a URL or a path), else ``$BERTH_HOME/artifacts``."""
    return _get(ARTIFACTS_URL, environ) or str(home(environ).absolute() / "artifacts")


def monitor_dir(environ: Mapping[str, str] | None = None) -> str:
    """``BERTH_MONITOR_DIR`` (a directory, or an fsspec URL such as ``s3://bucket/prefix`` shared by every
    server), else ``$BERTH_HOME/monitoring``. A URL is kept as given; a path is expanded."""
    explicit = _get(MONITOR_DIR, environ)
    if explicit and "://" in explicit and not explicit.startswith("file://"):
        return explicit
    if explicit:
        return str(Path(explicit.removeprefix("file://")).expanduser())
    return str(home(environ) / "monitoring")


def s3_endpoint_url(environ: Mapping[str, str] | None = None) -> str | None:
    """``BERTH_S3_ENDPOINT_URL``: the endpoint of an S3-compatible server; None for AWS's own endpoints."""
    return url(S3_ENDPOINT_URL, environ)


def sklearn_matrix(environ: Mapping[str, str] | None = None) -> bool:
    """``BERTH_SKLEARN_MATRIX`` (default on): serve scikit-learn pipelines through their NumPy twin."""
    return flag(SKLEARN_MATRIX, True, environ)


def archive_max_bytes(default: int, environ: Mapping[str, str] | None = None) -> int:
    """``BERTH_ARCHIVE_MAX_BYTES``: the largest total payload a ``.berth`` archive may declare."""
    return positive_int(ARCHIVE_MAX_BYTES, default, environ)


def archive_max_files(default: int, environ: Mapping[str, str] | None = None) -> int:
    """``BERTH_ARCHIVE_MAX_FILES``: the most payload files a ``.berth`` archive may list."""
    return positive_int(ARCHIVE_MAX_FILES, default, environ)
