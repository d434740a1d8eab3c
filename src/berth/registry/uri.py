"""Model URIs: ``models:/NAME/VERSION``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``.

Light on purpose (no SQLAlchemy): :mod:`berth.source`, which turns every kind of model URI into a verified
bundle, parses URIs here before deciding whether a registry is involved at all. ``SCHEME`` is the one definition
of the ``models:/`` prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from berth.errors import RegistryError
from berth.names import check_model_name

SCHEME = "models:/"
LATEST = "latest"
ALIAS_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
FORMS = "models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/latest"


@dataclass(frozen=True)
class ModelUri:
    """One parsed model URI: exactly one of ``version``, ``alias`` and ``latest`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None
    latest: bool = False

    def __str__(self) -> str:
        if self.alias is not None:
            return f"{SCHEME}{self.name}@{self.alias}"
        return f"{SCHEME}{self.name}/{LATEST if self.latest else self.version}"


@dataclass(frozen=True)
class RegistryEntry:
    """Where a loaded model came from in the registry; ``LoadedModel.registry`` holds one."""

    name: str
    version: int
    alias: str | None
    uri: str
    digest: str


def is_model_uri(uri: object) -> bool:
    return isinstance(uri, str) and uri.startswith(SCHEME)


def parse_model_uri(uri: str) -> ModelUri | None:
    """The parts of a ``models:/`` URI; None for anything else (a path, ``s3://...``). Malformed raises."""
    if not is_model_uri(uri):
        return None
    rest = uri[len(SCHEME):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        check_name(name, uri)
        check_alias(alias, uri)
        return ModelUri(name, alias=alias)
    name, slash, selector = rest.partition("/")
    check_name(name, uri)
    if not slash or not selector:
        raise RegistryError(f"{uri!r} names no version: use {FORMS}")
    if selector == LATEST:
        return ModelUri(name, latest=True)
    if not selector.isascii() or not selector.isdigit() or int(selector) < 1:
        raise RegistryError(f"{uri!r}: the version must be a number from 1, an @alias or 'latest' ({FORMS})")
    return ModelUri(name, version=int(selector))


def check_name(name: str, context: str | None = None) -> str:
    """The model-name rule of :mod:`berth.names`, raising :class:`RegistryError`."""
    return check_model_name(name, context, error=RegistryError)


def check_alias(alias: str, context: str | None = None) -> str:
    if not isinstance(alias, str) or not ALIAS_PATTERN.fullmatch(alias) or alias == LATEST:
        where = f" in {context!r}" if context and context != alias else ""
        raise RegistryError(f"invalid alias {alias!r}{where}: use letters, digits, '_' and '-', starting with a "
                            "letter or '_', at most 64 characters; 'latest' is reserved")
    return alias
