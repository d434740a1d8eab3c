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
    RegistryConflictError,
    RegistryError,
    RegistryNotFoundError,
    RegistrySchemaError,
    SignatureError,
    StorageError,
    TrustError,
    UsageError,
)

if TYPE_CHECKING:
    from berth.bundle import save
    from berth.flavors.base import Flavor, Predictor, SavedPayload
    from berth.importer import import_model
    from berth.manifest import Manifest
    from berth.model import LoadedModel, inspect, load, verify
    from berth.packing import pack, unpack
    from berth.registry.store import Registry
    from berth.serving import serve
    from berth.signature import Signature

    __version__: str  # the installed distribution's (berth.version), read on first use

_LAZY = {
    "__version__": "berth.version",
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
    "Flavor": "berth.flavors.base",  # the plugin base of a flavor (entry-point group "berth.flavors")
    "Predictor": "berth.flavors.base",
    "SavedPayload": "berth.flavors.base",
}

__all__ = [
    "BerthError",
    "BerthWarning",
    "BundleError",
    "EnvironmentMismatchError",
    "Flavor",
    "FlavorError",
    "IntegrityError",
    "LoadedModel",
    "Manifest",
    "PredictionError",
    "Predictor",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistrySchemaError",
    "SavedPayload",
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
    imported = importlib.import_module(module)
    value = imported.version() if name == "__version__" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
