"""One rule each for the strings that name things: model names, versions, and a bundle's file paths.

A model name starts with a letter or a digit, then letters, digits, ``.``, ``_`` and ``-``, at most 128
characters in all: safe as a path segment (the monitoring store keeps a directory per model), in a URL
(``models:/NAME/3``, ``/v2/models/NAME/infer``) and as a Prometheus label value. The registry, model URIs, the
monitoring store, the server and manifests share it.

Anything that comes from a bundle (a manifest is data anyone can write) is checked against these rules before
it names a file, an HTTP header or a metric label: at manifest parse time (``berth.manifest_rules``) and again
where the value is used (the monitoring store, the server's model slots). The rules are deliberately narrow
ASCII tokens: they cannot hold a path separator, ``..``, a control character, whitespace or a header delimiter.
"""

from __future__ import annotations

import re

from berth.errors import BerthError, UsageError

MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters"
NAME_PATTERN = MODEL_NAME_PATTERN
# a version (of a served model, of Python, of a library): a file name under the store and a header value
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}")
# one segment of a payload file's path inside a bundle; no leading dot, so never "." or ".."
PATH_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+=-]{0,99}")
# a Python distribution name (PEP 508), as it goes into requirements.txt
DISTRIBUTION_PATTERN = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
# a flavor or payload-format identifier
IDENTIFIER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_PATH_LENGTH = 512
MAX_PATH_DEPTH = 16
RESERVED_PATHS = frozenset({"berth.json"})  # the manifest itself is never a listed payload file


def is_name(value: object) -> bool:
    return is_model_name(value)


def is_version(value: object) -> bool:
    return isinstance(value, str) and VERSION_PATTERN.fullmatch(value) is not None


def is_distribution(value: object) -> bool:
    return isinstance(value, str) and DISTRIBUTION_PATTERN.fullmatch(value) is not None


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and IDENTIFIER_PATTERN.fullmatch(value) is not None


def shown(value: object, limit: int = 60) -> str:
    """A value for an error message: repr'd (control characters escaped) and cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name_problem(value: object) -> str | None:
    """Why ``value`` is not a model name, or None when it is one."""
    if is_name(value):
        return None
    return (f"{shown(value)} is not a valid name: 1 to 128 characters of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit")


def version_problem(value: object) -> str | None:
    if is_version(value):
        return None
    return (f"{shown(value)} is not a valid version: 1 to 64 characters of letters, digits, '.', '_', '+', "
            "'!' and '-', starting with a letter or digit")


def path_problem(value: object) -> str | None:
    """Why ``value`` is not a safe relative file path inside a bundle, or None when it is one.

    Safe means: relative, forward slashes only, at most 16 segments of ASCII letters, digits and ``._+=-`` (no
    segment starting with a dot, so no ``.`` or ``..``), at most 512 characters, and not the manifest's name.
    Such a path is already normal: it joins under a directory without ever leaving it, on any filesystem.
    """
    if not isinstance(value, str) or not value:
        return f"{shown(value)} is not a file path"
    if len(value) > MAX_PATH_LENGTH:
        return f"{shown(value)} is longer than {MAX_PATH_LENGTH} characters"
    if value.startswith("/") or "\\" in value or ":" in value:
        return f"{shown(value)} is not a relative path with forward slashes"
    segments = value.split("/")
    if len(segments) > MAX_PATH_DEPTH:
        return f"{shown(value)} is nested deeper than {MAX_PATH_DEPTH} directories"
    for segment in segments:
        if PATH_SEGMENT.fullmatch(segment) is None:
            return (f"{shown(value)} has the segment {shown(segment)}: use ASCII letters, digits and '._+=-', "
                    "not starting with '.'")
    if value.casefold() in RESERVED_PATHS:
        return f"{shown(value)} is the manifest's own name"
    return None


def is_model_name(name: object) -> bool:
    return isinstance(name, str) and MODEL_NAME_PATTERN.fullmatch(name) is not None


def check_model_name(name: str, context: str | None = None, *, error: type[BerthError] = UsageError) -> str:
    """``name`` if it follows the rule; otherwise ``error`` (a :class:`UsageError` unless the caller says)."""
    if not is_model_name(name):
        where = f" in {context!r}" if context and context != name else ""
        raise error(f"invalid model name {name!r}{where}: {MODEL_NAME_RULE}")
    return name
