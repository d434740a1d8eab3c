"""The public names of ``berth``: a change here is a change of the API and must be deliberate."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import Any

import numpy as np

import berth

PUBLIC = {
    "BerthError", "BerthWarning", "BundleError", "EnvironmentMismatchError", "FlavorError", "IntegrityError",
    "PredictionError", "RegistryConflictError", "RegistryError", "RegistryNotFoundError", "RegistrySchemaError",
    "SignatureError", "StorageError", "TrustError", "UsageError",
    "Flavor", "LoadedModel", "Manifest", "Predictor", "Registry", "SavedPayload", "Signature",
    "__version__", "import_model", "inspect", "load", "pack", "save", "serve", "unpack", "verify",
}
# What a Python caller can catch; the request errors (401, 404, 413, ...) exist only as HTTP answers.
CALLER_ERRORS = {"BundleError", "EnvironmentMismatchError", "FlavorError", "IntegrityError", "PredictionError",
                 "RegistryConflictError", "RegistryError", "RegistryNotFoundError", "RegistrySchemaError",
                 "SignatureError", "StorageError", "TrustError", "UsageError"}


def test_public_names_do_not_drift() -> None:
    assert set(berth.__all__) == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in berth.__all__:
        assert getattr(berth, name) is not None, name


def test_errors_form_one_tree() -> None:
    for name in berth.__all__:
        value = getattr(berth, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, berth.BerthError) or value is berth.BerthWarning


def test_the_errors_a_caller_catches_are_exported() -> None:
    from berth import errors

    raised_by_the_api = {name for name, value in vars(errors).items() if isinstance(value, type)
                         and issubclass(value, errors.BerthError) and value.__module__ == errors.__name__
                         and not issubclass(value, errors.RequestError | errors.InternalError)
                         and value not in (errors.NotReadyError, errors.RequestTimeoutError, errors.BerthError)}
    assert raised_by_the_api == CALLER_ERRORS
    assert set(berth.__all__) >= CALLER_ERRORS


def test_import_stays_light() -> None:
    """``import berth`` loads no framework, no numpy and not the server; the lazy names load on first use."""
    code = ("import sys, berth; heavy = {'numpy', 'pandas', 'fastapi', 'sklearn', 'berth.serving', "
            "'berth.flavors.base', 'importlib.metadata'} & set(sys.modules); print(sorted(heavy)); "
            "assert issubclass(berth.Flavor, object) and berth.__version__")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version_is_the_installed_distributions() -> None:
    assert berth.__version__ == metadata.version("berth")


def test_a_flavor_plugin_needs_only_the_public_names() -> None:
    class Doubler(berth.Predictor):
        def predict(self, inputs: Any) -> np.ndarray:
            return 2 * np.asarray(inputs)

    class DoublerFlavor(berth.Flavor):
        name = "doubler"
        formats = ("json",)

        def load(self, directory: object, manifest: object, *, trust: bool,
                 trusted_types: list[str]) -> berth.Predictor:
            return Doubler()

    assert DoublerFlavor().check_format(None) == "json"
    assert DoublerFlavor().load(None, None, trust=False, trusted_types=[]).predict([1, 2]).tolist() == [2, 4]
    assert berth.SavedPayload(files=[], libraries=[], predictor=Doubler()).options == {}


def test_monitoring_exports_stay_functions_after_the_modules_load() -> None:
    """A lazily exported name that is also a submodule's name becomes the module once that submodule is imported
    (by the report, say): each export must still be what it was after every monitoring module is loaded."""
    import importlib
    import inspect
    import pkgutil

    import berth.monitoring as monitoring

    for info in pkgutil.iter_modules(monitoring.__path__):
        importlib.import_module(f"berth.monitoring.{info.name}")
    for name in monitoring.__all__:
        value = getattr(monitoring, name)
        assert not inspect.ismodule(value), f"berth.monitoring.{name} is a module, not the exported {name}"
