"""Model URIs to verified local bundles: the one place that knows every form a model can be named in.

A model is named by

* a bundle directory, local or remote (``out/iris``, ``s3://bucket/iris``);
* a packed ``.berth`` archive, local or remote;
* a registered model (``models:/iris/3``, ``models:/iris@production``, ``models:/iris/latest``), resolved in the
  :class:`~berth.registry.store.Registry` passed in, and checked against the content digest it recorded;

:func:`open_bundle` turns any of them into a :class:`LocalBundle`: a local directory whose every file matched the
manifest, for the duration of a ``with`` block. :func:`read_manifest_at` reads only the manifest (no download of a
remote payload). Nothing here picks a registry by itself, nor imports one: the entry points (``berth.load``,
``create_app``, the CLI) call :func:`berth.registry.default.registry_for` once and pass the registry down, and this
module asks it only what :class:`ModelResolver` names. A model file saved the tutorial way (``.joblib``, ``.pkl``)
is not a bundle: :func:`berth.importer.open_model` imports it first, for the server.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from berth import packing, storage
from berth.errors import BundleError, IntegrityError, StorageError, UsageError
from berth.manifest import MANIFEST_NAME, Manifest, read_manifest, verify_directory
from berth.registry.uri import ModelUri, RegistryEntry, is_model_uri, parse_model_uri

Uri = str | os.PathLike[str]


class RegisteredVersion(Protocol):
    """What a registry says of the version a ``models:/`` URI names."""

    @property
    def version(self) -> int: ...

    @property
    def digest(self) -> str: ...

    @property
    def artifact_uri(self) -> str: ...


class ModelResolver(Protocol):
    """All this module needs of a registry (:class:`berth.registry.store.Registry` is one)."""

    def resolve(self, uri: ModelUri) -> RegisteredVersion: ...


@dataclass(frozen=True)
class LocalBundle:
    """A verified bundle on local disk; ``directory`` is valid only inside the ``with`` block that opened it."""

    uri: str  # as the caller named it
    directory: Path
    manifest: Manifest
    entry: RegistryEntry | None = None  # set when named by a models:/ URI


def resolve(uri: str, registry: ModelResolver | None) -> tuple[RegistryEntry, str]:
    """The registry entry a ``models:/`` URI names, and where its bundle is stored."""
    parsed = parse_model_uri(uri)
    if parsed is None:
        raise UsageError(f"{uri!r} is not a model URI (models:/NAME/VERSION, models:/NAME@ALIAS)")
    if registry is None:
        raise UsageError(f"{uri} names a registered model, but no registry was given (pass registry=)")
    found = registry.resolve(parsed)
    return RegistryEntry(parsed.name, found.version, parsed.alias, uri, found.digest), found.artifact_uri


def check_registered(manifest: Manifest, entry: RegistryEntry) -> Manifest:
    """The stored bundle must still be the one registered: same content digest as the registry recorded."""
    if manifest.content_digest != entry.digest:
        raise IntegrityError(f"{entry.uri} (version {entry.version}) was registered with digest {entry.digest}, "
                             f"but its stored bundle has {manifest.content_digest}; refusing to use it")
    return manifest


@contextmanager
def open_bundle(uri: Uri, *, registry: ModelResolver | None = None) -> Iterator[LocalBundle]:
    """A verified local copy of the bundle ``uri`` names: the directory itself, an unpacked archive, a download,
    or the registered version's bundle (checked against the registry's digest)."""
    text = str(uri)
    if is_model_uri(text):
        entry, location = resolve(text, registry)
        with open_bundle(location) as stored:
            yield LocalBundle(text, stored.directory, check_registered(stored.manifest, entry), entry)
        return
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive, tempfile.TemporaryDirectory(prefix="berth-unpack-") as scratch:
            yield LocalBundle(text, Path(scratch), packing.extract(archive, Path(scratch)))
        return
    with storage.local_directory(uri) as directory:
        manifest = read_manifest(directory)
        verify_directory(directory, manifest)
        yield LocalBundle(text, directory, manifest)


def read_manifest_at(uri: Uri, *, registry: ModelResolver | None = None) -> Manifest:
    """The manifest of the bundle ``uri`` names, without loading (or, for a remote directory, downloading) its
    payload. A registered model's manifest is checked against the registry's digest; an archive is read and
    every file hashed without writing anything; a directory's files are not hashed (that is :func:`open_bundle`)."""
    text = str(uri)
    if is_model_uri(text):
        entry, location = resolve(text, registry)
        return check_registered(read_manifest_at(location), entry)
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive:
            return packing.check_archive(archive)  # every file streamed and hashed, nothing written
    if storage.is_remote(uri):
        location = storage.join(text, MANIFEST_NAME)
        try:
            data = storage.read_bytes(location)
        except StorageError as exc:
            raise BundleError(f"{uri} is not a berth bundle: it has no {MANIFEST_NAME}") from exc
        return Manifest.from_json(data, location)
    return read_manifest(storage.local_path(uri))
