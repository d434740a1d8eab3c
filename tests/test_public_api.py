"""The public names of ``berth``: a change here is a change of the API and must be deliberate."""

from __future__ import annotations

import berth

PUBLIC = {
    "BerthError", "BerthWarning", "BundleError", "EnvironmentMismatchError", "FlavorError", "IntegrityError",
    "LoadedModel", "Manifest", "PredictionError", "Registry", "RegistryError", "Signature", "SignatureError",
    "StorageError", "TrustError", "UsageError", "__version__", "import_model", "inspect", "load", "pack", "save",
    "serve", "unpack", "verify",
}


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
