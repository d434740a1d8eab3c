"""The model registry: numbered immutable versions, aliases, tags and an audit log over SQLite or PostgreSQL,
with bundles in a local or S3 artifact store. See docs/registry.md.

Names are imported on first use, so parsing a ``models:/`` URI does not pull in SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.registry.records import AuditEvent, ModelVersion, RegisteredModel
    from berth.registry.store import Registry
    from berth.registry.uri import ModelUri, RegistryEntry, parse_model_uri

_LAZY = {
    "Registry": "berth.registry.store",
    "ModelVersion": "berth.registry.records",
    "RegisteredModel": "berth.registry.records",
    "AuditEvent": "berth.registry.records",
    "ModelUri": "berth.registry.uri",
    "RegistryEntry": "berth.registry.uri",
    "parse_model_uri": "berth.registry.uri",
}

__all__ = ["AuditEvent", "ModelUri", "ModelVersion", "RegisteredModel", "Registry", "RegistryEntry",
           "parse_model_uri"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'berth.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
