"""The one rule for model names, shared by the registry, model URIs and the monitoring store.

A name starts with a letter or a digit, then letters, digits, ``.``, ``_`` and ``-``, at most 128 characters in
all: safe as a path segment (the monitoring store keeps a directory per model), in a URL (``models:/NAME/3``,
``/v2/models/NAME/infer``) and as a Prometheus label value.
"""

from __future__ import annotations

import re

from berth.errors import BerthError, UsageError

MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MODEL_NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128 characters"


def is_model_name(name: object) -> bool:
    return isinstance(name, str) and MODEL_NAME_PATTERN.fullmatch(name) is not None


def check_model_name(name: str, context: str | None = None, *, error: type[BerthError] = UsageError) -> str:
    """``name`` if it follows the rule; otherwise ``error`` (a :class:`UsageError` unless the caller says)."""
    if not is_model_name(name):
        where = f" in {context!r}" if context and context != name else ""
        raise error(f"invalid model name {name!r}{where}: {MODEL_NAME_RULE}")
    return name
