"""What a container needs installed for one bundle: the flavor's libraries pinned as saved, plus berth itself.

The pins come from the manifest (``libraries``: only what the flavor recorded as needed to load the payload),
exactly as they were when the bundle was saved (``==``), so the container predicts as the notebook did.

berth itself gets into the image one of two ways:

- **a wheel built from this berth's source tree** (the default when berth is installed from a checkout, as in
  development or before berth is published): the wheel is built with pip into ``wheels/`` of the build context
  and installed from there, so the image holds exactly the berth that wrote the recipe, with no index needed
  for berth;
- **a requirement** ``berth==VERSION`` when this berth was installed from a package index (no source tree to
  build from), or a wheel given explicitly with ``--berth-wheel``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from berth.errors import UsageError
from berth.manifest import Manifest

# a local version label such as torch's "+cpu" names a build from PyTorch's own index, not from PyPI
LOCAL_BUILD_INDEX = {("torch", "cpu"): "https://download.pytorch.org/whl/cpu"}


@dataclass(frozen=True)
class BerthPackage:
    """How berth is installed in the image: a wheel file in the context (``wheel``) or a requirement line."""

    requirement: str  # the line for requirements.txt: "./wheels/berth-0.1.0-py3-none-any.whl" or "berth==0.1.0"
    wheel: Path | None = None  # the wheel in the build context, when there is one
    origin: str = ""  # where it came from, for the build summary


def pins(manifest: Manifest) -> tuple[list[str], list[str]]:
    """``name==version`` for every library the bundle needs (berth aside), and the index lines they need."""
    lines: list[str] = []
    indexes: list[str] = []
    for name, version in sorted(manifest.libraries.items()):
        if name.lower() == "berth":
            continue
        public, _, local = version.partition("+")
        try:
            Version(public)
        except InvalidVersion:
            raise UsageError(f"the bundle records {name} {version!r}, which is not a version pip can install") from None
        index = LOCAL_BUILD_INDEX.get((name.lower(), local))
        if index and f"--extra-index-url {index}" not in indexes:
            indexes.append(f"--extra-index-url {index}")
        lines.append(f"{name}=={public}")
    return lines, indexes


def extra_lines(extra: list[str]) -> list[str]:
    """Requirements given with ``--extra-requirements``: each a requirement, or a file of them (``@file``)."""
    lines: list[str] = []
    for item in extra:
        if item.startswith("@"):
            path = Path(item[1:])
            if not path.is_file():
                raise UsageError(f"--extra-requirements {item}: no such file")
            entries = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        else:
            entries = [part.strip() for part in item.split(",")]
        for entry in filter(None, entries):
            try:
                Requirement(entry)
            except InvalidRequirement as exc:
                raise UsageError(f"--extra-requirements: {entry!r} is not a requirement: {exc}") from None
            lines.append(entry)
    return lines


def render(manifest: Manifest, berth: BerthPackage, extra: list[str]) -> str:
    """The text of ``requirements.txt``."""
    library_pins, indexes = pins(manifest)
    added = extra_lines(extra)
    pinned = {Requirement(line).name.lower() for line in library_pins}
    clash = [line for line in added if Requirement(line).name.lower() in pinned]
    if clash:
        raise UsageError(f"--extra-requirements {', '.join(clash)}: the bundle already pins "
                         + ", ".join(Requirement(c).name for c in clash) + " to the version it was saved with")
    parts = [f"# written by berth for bundle {manifest.name} ({manifest.flavor}/{manifest.format}); "
             f"pins are the versions it was saved with", *indexes, *library_pins,
             "# berth itself", berth.requirement]
    if added:
        parts += ["# --extra-requirements", *added]
    return "\n".join(parts) + "\n"


def source_tree() -> Path | None:
    """The checkout this berth is installed from (editable or from a local directory), if any."""
    try:
        direct = metadata.distribution("berth").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        direct = None
    if direct:
        url = json.loads(direct).get("url", "")
        if url.startswith("file://"):
            root = Path(url.removeprefix("file://"))
            if (root / "pyproject.toml").is_file() and (root / "src" / "berth").is_dir():
                return root
    return None


def build_wheel(root: Path, destination: Path) -> Path:
    """Build berth's wheel from the source tree ``root`` into ``destination``; returns the wheel's path.

    The tree is copied first (pyproject, README, ``src/``), so the build leaves nothing in the checkout.
    """
    destination.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="berth-wheel-") as scratch:
        tree = Path(scratch) / "berth"
        tree.mkdir()
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (root / name).is_file():
                shutil.copy2(root / name, tree / name)
        shutil.copytree(root / "src", tree / "src", ignore=shutil.ignore_patterns(
            "__pycache__", "*.pyc", "*.egg-info"))
        out = Path(scratch) / "out"
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(tree)]
        if util.find_spec("setuptools") is not None:  # the build backend is here: no isolated build env
            command.insert(4, "--no-build-isolation")
        # a fixed timestamp for every file in the wheel: the same source gives the same bytes (and lock hash)
        environment = {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH", "315532800")}
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        wheels = sorted(out.glob("berth-*.whl")) if out.is_dir() else []
        if result.returncode != 0 or not wheels:
            raise UsageError(f"cannot build berth's wheel from {root}: {(result.stderr or result.stdout).strip()}")
        target = destination / wheels[0].name
        shutil.copy2(wheels[0], target)
        return target


def berth_package(context: Path, wheel: str | None = None) -> BerthPackage:
    """Put berth into the build context: the given wheel, one built from the source tree, or a requirement."""
    wheels = context / "wheels"
    if wheel is not None:
        path = Path(wheel)
        if not path.is_file() or not path.name.startswith("berth-") or path.suffix != ".whl":
            raise UsageError(f"--berth-wheel {wheel}: expected an existing berth-*.whl file")
        wheels.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, wheels / path.name)
        return BerthPackage(f"./wheels/{path.name}", wheels / path.name, f"the wheel {path}")
    root = source_tree()
    if root is not None:
        built = build_wheel(root, wheels)
        return BerthPackage(f"./wheels/{built.name}", built, f"a wheel built from {root}")
    version = metadata.version("berth")
    return BerthPackage(f"berth=={version}", None, "the package index")
