"""Capture the Python and library versions a bundle was made with, and compare them on load.

The rule: the same major and minor version is fine; another minor version warns; another major version, or a
library that is not installed, refuses to load unless the caller allows a mismatch. Messages name both versions.
"""

from __future__ import annotations

import platform
import warnings
from importlib import metadata

from packaging.version import InvalidVersion, Version

from berth.errors import BerthWarning, EnvironmentMismatchError


def installed_version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def capture(distributions: list[str]) -> dict[str, str]:
    """Versions of the given distributions that are installed, by distribution name."""
    found = {name: installed_version(name) for name in sorted(set(distributions))}
    return {name: version for name, version in found.items() if version is not None}


def python_version() -> str:
    return platform.python_version()


def _difference(saved: str, current: str) -> str | None:
    """'major', 'minor' or None (same release up to the patch level)."""
    try:
        a, b = Version(saved), Version(current)
    except InvalidVersion:
        return None if saved == current else "minor"
    if a.major != b.major:
        return "major"
    if a.minor != b.minor:
        return "minor"
    return None


def check(python: str, libraries: dict[str, str], *, allow_mismatch: bool = False) -> list[str]:
    """Compare saved versions with the running ones; warn on minor, refuse on major differences.

    Returns the warnings it issued (also emitted as :class:`BerthWarning`).
    """
    refusals: list[str] = []
    notes: list[str] = []
    pairs: list[tuple[str, str, str | None]] = [("Python", python, python_version())]
    pairs += [(name, saved, installed_version(name)) for name, saved in sorted(libraries.items())]
    for name, saved, current in pairs:
        if current is None:
            refusals.append(f"{name} {saved} was used to save this bundle but {name} is not installed")
            continue
        difference = _difference(saved, current)
        if difference == "major":
            refusals.append(f"{name} {saved} was used to save this bundle, {current} is installed")
        elif difference == "minor":
            notes.append(f"{name} {saved} was used to save this bundle, {current} is installed")
    if refusals and not allow_mismatch:
        raise EnvironmentMismatchError(
            "environment mismatch: " + "; ".join(refusals)
            + " (install matching versions, or pass allow_version_mismatch=True / --allow-version-mismatch)",
            [{"loc": ["environment"], "msg": r} for r in refusals],
        )
    issued = notes + refusals
    for note in issued:
        warnings.warn(note, BerthWarning, stacklevel=3)
    return issued
