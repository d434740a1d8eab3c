"""berth: save a trained model as a safe, versioned bundle; register, serve and monitor it.

The public API is listed in ``__all__``; implementations live in the submodules and are imported on first use,
so ``import berth`` stays fast and pulls in no machine-learning framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from berth.errors import (
    BerthError,
    BerthWarning,
    BundleError,
    EnvironmentMismatchError,
    FlavorError,
    IntegrityError,
    PredictionError,
    RegistryError,
    SignatureError,
    StorageError,
    TrustError,
    UsageError,
)

if TYPE_CHECKING:
    from berth.bundle import save
    from berth.importer import import_model
    from berth.manifest import Manifest
    from berth.model import LoadedModel, inspect, load, verify
    from berth.packing import pack, unpack
    from berth.registry.store import Registry
    from berth.serving import serve
    from berth.signature import Signature

__version__ = "0.1.0"

_LAZY = {
    "save": "berth.bundle",
    "load": "berth.model",
    "inspect": "berth.model",
    "verify": "berth.model",
    "LoadedModel": "berth.model",
    "import_model": "berth.importer",
    "pack": "berth.packing",
    "unpack": "berth.packing",
    "Manifest": "berth.manifest",
    "Signature": "berth.signature",
    "serve": "berth.serving",
    "Registry": "berth.registry.store",
}

__all__ = [
    "BerthError",
    "BerthWarning",
    "BundleError",
    "EnvironmentMismatchError",
    "FlavorError",
    "IntegrityError",
    "LoadedModel",
    "Manifest",
    "PredictionError",
    "Registry",
    "RegistryError",
    "Signature",
    "SignatureError",
    "StorageError",
    "TrustError",
    "UsageError",
    "__version__",
    "import_model",
    "inspect",
    "load",
    "pack",
    "save",
    "serve",
    "unpack",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'berth' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
