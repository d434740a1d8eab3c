"""``requirements.lock``: every package of the image's serving environment, pinned and hashed.

``requirements.txt`` says what the image needs (the model's libraries as saved, berth, extras); berth's own
dependencies (fastapi, uvicorn, pandas, pyarrow, ...) float there, so two builds of one bundle a week apart
would install different versions. The lock fixes them: pip resolves ``requirements.txt`` once, for the image's
Python version and platform (``pip install --dry-run --report`` with ``--python-version``, ``--platform``,
``--only-binary=:all:``), and every package of the result is written as ``name==version --hash=sha256:...``
(berth's own wheel in the context by its path and hash). The Dockerfile installs it with
``pip install --require-hashes --no-deps``: pip installs exactly these files or fails; it resolves nothing.

The lock is for one platform (``linux/amd64`` by default; ``linux/arm64``): build the image for that platform
(``docker build --platform ...``). Resolving needs the package index, as the image build does.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from berth.errors import UsageError

LOCK_NAME = "requirements.lock"
PLATFORMS = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
DEFAULT_PLATFORM = "linux/amd64"
GLIBC_MINOR = 36  # python:X.Y-slim-bookworm is Debian 12: glibc 2.36
RESOLVE_TIMEOUT_S = 900


def platform_tags(platform: str) -> list[str]:
    """The wheel platform tags pip on the image accepts, most specific first (pip does not expand them)."""
    arch = PLATFORMS.get(platform)
    if arch is None:
        raise UsageError(f"--platform {platform!r}: berth locks for {', '.join(PLATFORMS)}")
    manylinux = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    legacy = [f"manylinux2014_{arch}"] + ([f"manylinux2010_{arch}", f"manylinux1_{arch}"] if arch == "x86_64" else [])
    return [*manylinux, *legacy, f"linux_{arch}"]


def resolve(context: Path, python: str, platform: str) -> list[dict[str, Any]]:
    """pip's installation report for ``context/requirements.txt`` on the image's Python and platform."""
    major_minor = ".".join(python.split(".")[:2])
    with tempfile.TemporaryDirectory(prefix="berth-lock-") as scratch:
        report = Path(scratch) / "report.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                   "--disable-pip-version-check", "--report", str(report), "--only-binary=:all:",
                   "--python-version", major_minor, "--implementation", "cp",
                   "--abi", f"cp{major_minor.replace('.', '')}", "--target", str(Path(scratch) / "target"),
                   *(f"--platform={tag}" for tag in platform_tags(platform)), "-r", "requirements.txt"]
        try:
            done = subprocess.run(command, cwd=context, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise UsageError(f"resolving the serving environment took over {RESOLVE_TIMEOUT_S} s; "
                             "pass --no-lock to build without a lock file") from None
        if done.returncode != 0 or not report.is_file():
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")] or \
                done.stderr.strip().splitlines()[-3:]
            raise UsageError(f"cannot lock the serving environment for Python {major_minor} on {platform}: "
                             f"{' '.join(errors)[:600]} (pass --no-lock to build without a lock file)")
        return json.loads(report.read_text())["install"]


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def local_file(url: str) -> Path | None:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def lock_line(item: dict[str, Any], context: Path) -> str:
    """One package of the report as a hashed requirement."""
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    info = item.get("download_info") or {}
    url = info.get("url", "")
    path = local_file(url)
    if path is not None and path.resolve().is_relative_to(context.resolve()):  # berth's wheel in the context
        return f"./{path.resolve().relative_to(context.resolve()).as_posix()} --hash=sha256:{file_sha256(path)}"
    digest = ((info.get("archive_info") or {}).get("hashes") or {}).get("sha256")
    if digest is None and path is not None and path.is_file():  # a find-links directory without hashes
        digest = file_sha256(path)
    if digest is None:
        raise UsageError(f"the index gave no sha256 for {name} {version} ({url}); cannot lock it "
                         "(pass --no-lock to build without a lock file)")
    return f"{name}=={version} \\\n    --hash=sha256:{digest}"


def write_lock(context: Path, python: str, platform: str) -> Path:
    """Resolve ``context/requirements.txt`` and write ``context/requirements.lock``; returns its path."""
    items = resolve(context, python, platform)
    options = [line for line in (context / "requirements.txt").read_text().splitlines() if line.startswith("--")]
    lines = [f"# written by berth build: every package of the serving environment for Python "
             f"{'.'.join(python.split('.')[:2])} on {platform}, resolved from requirements.txt",
             "# install with: pip install --require-hashes --no-deps -r requirements.lock", *options]
    lines += [lock_line(item, context) for item in sorted(items, key=lambda i: i["metadata"]["name"].lower())]
    path = context / LOCK_NAME
    path.write_text("\n".join(lines) + "\n")
    return path
