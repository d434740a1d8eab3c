"""A bundle loaded and verified: :class:`LoadedModel`, and :func:`load` that makes one from any model URI."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from berth import environment, packing, storage
from berth.bundle import read_manifest, verify_directory
from berth.coercion import coerce
from berth.errors import BerthError, BundleError, FlavorError, PredictionError, StorageError
from berth.flavors.base import Predictor, get_flavor
from berth.manifest import MANIFEST_NAME, Manifest
from berth.signature import Signature

if TYPE_CHECKING:
    from berth.registry.uri import RegistryEntry

MODEL_URI_SCHEME = "models:/"


class LoadedModel:
    """Predicts from request-shaped input: rows, records, columns by name, DataFrames or arrays."""

    def __init__(self, manifest: Manifest, predictor: Predictor, source: str,
                 registry: RegistryEntry | None = None) -> None:
        self.manifest = manifest
        self.predictor = predictor
        self.source = source
        self.registry = registry  # name, version and alias in the model registry, when loaded from models:/

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def signature(self) -> Signature:
        assert self.manifest.signature is not None
        return self.manifest.signature

    @property
    def classes(self) -> list[Any] | None:
        return self.signature.outputs.classes

    @property
    def has_proba(self) -> bool:
        return self.predictor.has_proba

    def prepare(self, data: Any, *, row_offset: int = 0) -> Any:
        """Validate ``data`` against the signature and shape it as the model wants; raises SignatureError."""
        return coerce(self.signature, data, to=self.predictor.input_target, dtype=self.predictor.input_dtype,
                      row_offset=row_offset)

    def predict(self, data: Any) -> np.ndarray:
        return self.predict_prepared(self.prepare(data))

    def predict_proba(self, data: Any) -> np.ndarray:
        return self.predict_proba_prepared(self.prepare(data))

    def predict_prepared(self, inputs: Any) -> np.ndarray:
        """Predict on input that :meth:`prepare` returned (the batcher's entry point)."""
        try:
            return self.predictor.predict(inputs)
        except BerthError:
            raise
        except Exception as exc:
            raise PredictionError(f"the model raised {type(exc).__name__}: {exc}") from exc

    def predict_proba_prepared(self, inputs: Any) -> np.ndarray:
        try:
            return self.predictor.predict_proba(inputs)
        except BerthError:
            raise
        except Exception as exc:
            raise PredictionError(f"the model raised {type(exc).__name__}: {exc}") from exc

    def __repr__(self) -> str:
        return f"<LoadedModel {self.name!r} flavor={self.manifest.flavor} format={self.manifest.format}>"


def load(
    uri: str | os.PathLike[str],
    *,
    trust: bool = False,
    trusted_types: Iterable[str] = (),
    allow_version_mismatch: bool = False,
) -> LoadedModel:
    """Load and verify the bundle at ``uri``: a directory, a packed ``.berth`` file, or an fsspec URL.

    Every payload file's sha256 is checked first; pickle-based payloads need ``trust=True``; a different major
    version of Python or of a library the flavor needs refuses to load unless ``allow_version_mismatch``.
    A model URI (``models:/iris/3``, ``models:/iris@production``) loads from the registry the environment names.
    """
    if str(uri).startswith(MODEL_URI_SCHEME):
        entry, location = resolve_model_uri(str(uri))
        model = load(location, trust=trust, trusted_types=trusted_types,
                     allow_version_mismatch=allow_version_mismatch)
        check_registered(model.manifest, entry)
        model.source, model.registry = str(uri), entry
        return model
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive, tempfile.TemporaryDirectory(prefix="berth-unpack-") as scratch:
            packing.extract(archive, Path(scratch))
            return _load_directory(Path(scratch), str(uri), trust, list(trusted_types), allow_version_mismatch)
    with storage.local_directory(uri) as directory:
        return _load_directory(directory, str(uri), trust, list(trusted_types), allow_version_mismatch)


def _load_directory(directory: Path, source: str, trust: bool, trusted_types: list[str],
                    allow_version_mismatch: bool) -> LoadedModel:
    manifest = read_manifest(directory)
    verify_directory(directory, manifest)
    environment.check(manifest.python, manifest.libraries, allow_mismatch=allow_version_mismatch)
    flavor = get_flavor(manifest.flavor)
    try:
        predictor = flavor.load(directory, manifest, trust=trust, trusted_types=trusted_types)
    except BerthError:
        raise
    except Exception as exc:  # a framework's own error while reading a payload that passed verification
        raise FlavorError(f"the {manifest.flavor} flavor cannot load {source} ({manifest.format}): "
                          f"{type(exc).__name__}: {exc}") from exc
    return LoadedModel(manifest, predictor, source)


def inspect(uri: str | os.PathLike[str]) -> Manifest:
    """Read a bundle's manifest without loading its payload."""
    if str(uri).startswith(MODEL_URI_SCHEME):
        entry, location = resolve_model_uri(str(uri))
        return check_registered(inspect(location), entry)
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive:
            return packing.check_archive(archive)  # every file streamed and hashed, nothing written
    if storage.is_remote(uri):
        location = storage.join(str(uri), MANIFEST_NAME)
        try:
            text = storage.read_bytes(location)
        except StorageError as exc:
            raise BundleError(f"{uri} is not a berth bundle: it has no {MANIFEST_NAME}") from exc
        return Manifest.from_json(text, location)
    return read_manifest(storage.local_path(uri))


def verify(uri: str | os.PathLike[str]) -> Manifest:
    """Check every file of the bundle at ``uri`` against its manifest; raises IntegrityError naming the file."""
    if str(uri).startswith(MODEL_URI_SCHEME):
        entry, location = resolve_model_uri(str(uri))
        return check_registered(verify(location), entry)
    if packing.is_archive(uri):
        return inspect(uri)  # reading the archive verifies every file
    with storage.local_directory(uri) as directory:
        manifest = read_manifest(directory)
        verify_directory(directory, manifest)
        return manifest


def resolve_model_uri(uri: str) -> tuple[RegistryEntry, str]:
    """The registry entry a ``models:/`` URI names, and where its bundle is."""
    from berth.registry.store import default_registry
    from berth.registry.uri import RegistryEntry, parse_model_uri

    parsed = parse_model_uri(uri)
    assert parsed is not None
    found = default_registry().resolve(parsed)
    return RegistryEntry(found.name, found.version, parsed.alias, uri, found.digest), found.artifact_uri


def check_registered(manifest: Manifest, entry: RegistryEntry) -> Manifest:
    """The stored bundle must still be the one registered: same content digest as the registry recorded."""
    if manifest.content_digest != entry.digest:
        from berth.errors import IntegrityError

        raise IntegrityError(f"{entry.uri} (version {entry.version}) was registered with digest {entry.digest}, "
                             f"but its stored bundle has {manifest.content_digest}; refusing to use it")
    return manifest
