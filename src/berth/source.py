"""Model URIs to verified local bundles: the one place that knows every form a model can be named in.

A model is named by

* a bundle directory, local or remote (``out/iris``, ``s3://bucket/iris``);
* a packed ``.berth`` archive, local or remote;
* a registered model (``models:/iris/3``, ``models:/iris@production``, ``models:/iris/latest``), resolved in the
  :class:`~berth.registry.store.Registry` passed in, and checked against the content digest it recorded;
* for the server only (``plain_files=True``), a model file saved the tutorial way (``.joblib``, ``.pkl``,
  ``.onnx``), imported into a temporary bundle first (pickle needs ``trust``).

:func:`open_bundle` turns any of them into a :class:`LocalBundle`: a local directory whose every file matched the
manifest, for the duration of a ``with`` block. :func:`read_manifest_at` reads only the manifest (no download of a
remote payload). Nothing here picks a registry by itself: the entry points (``berth.load``, ``create_app``, the
CLI) call :func:`registry_for` once and pass the registry down.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from berth import packing, storage
from berth.errors import BundleError, IntegrityError, StorageError, UsageError
from berth.manifest import MANIFEST_NAME, Manifest, read_manifest, verify_directory
from berth.registry.uri import RegistryEntry, is_model_uri, parse_model_uri

if TYPE_CHECKING:
    from berth.registry.store import Registry

Uri = str | os.PathLike[str]


@dataclass(frozen=True)
class LocalBundle:
    """A verified bundle on local disk; ``directory`` is valid only inside the ``with`` block that opened it."""

    uri: str  # as the caller named it
    directory: Path
    manifest: Manifest
    entry: RegistryEntry | None = None  # set when named by a models:/ URI


def registry_for(uris: Iterable[object], registry: Registry | None, url: str | None = None) -> Registry | None:
    """For an entry point: the registry to pass down for ``uris`` (URIs, or sources with ``uri`` and
    ``registry`` attributes, such as the server's ``ModelSource``).

    The one given; else, only if one of ``uris`` names a registered model and brings no registry of its own, the
    registry at ``url`` or, without one, the registry the environment names (``BERTH_REGISTRY_URL``); else None
    (and SQLAlchemy stays unimported).
    """
    if registry is not None:
        return registry
    if not any(is_model_uri(getattr(uri, "uri", uri)) and getattr(uri, "registry", None) is None for uri in uris):
        return None
    from berth.registry.store import default_registry

    return default_registry(url)


def resolve(uri: str, registry: Registry | None) -> tuple[RegistryEntry, str]:
    """The registry entry a ``models:/`` URI names, and where its bundle is stored."""
    parsed = parse_model_uri(uri)
    if parsed is None:
        raise UsageError(f"{uri!r} is not a model URI (models:/NAME/VERSION, models:/NAME@ALIAS)")
    if registry is None:
        raise UsageError(f"{uri} names a registered model, but no registry was given (pass registry=)")
    found = registry.resolve(parsed)
    return RegistryEntry(found.name, found.version, parsed.alias, uri, found.digest), found.artifact_uri


def check_registered(manifest: Manifest, entry: RegistryEntry) -> Manifest:
    """The stored bundle must still be the one registered: same content digest as the registry recorded."""
    if manifest.content_digest != entry.digest:
        raise IntegrityError(f"{entry.uri} (version {entry.version}) was registered with digest {entry.digest}, "
                             f"but its stored bundle has {manifest.content_digest}; refusing to use it")
    return manifest


def is_plain_model_file(uri: Uri) -> bool:
    """A file made the tutorial way (``joblib.dump``, ``pickle.dump``, an ONNX file), not a bundle."""
    from berth.importer import COMPRESSIONS, SUFFIXES

    name = str(uri).lower()
    name = name.removesuffix(next((c for c in COMPRESSIONS if name.endswith(c)), ""))
    return name.endswith(tuple(SUFFIXES))


@contextmanager
def open_bundle(uri: Uri, *, registry: Registry | None = None, plain_files: bool = False,
                trust: bool = False) -> Iterator[LocalBundle]:
    """A verified local copy of the bundle ``uri`` names: the directory itself, an unpacked archive, a download,
    the registered version's bundle (checked against the registry's digest) or, with ``plain_files``, a
    temporary bundle imported from a model file (``trust`` allows pickle and joblib files)."""
    text = str(uri)
    if is_model_uri(text):
        entry, location = resolve(text, registry)
        with open_bundle(location) as stored:
            yield LocalBundle(text, stored.directory, check_registered(stored.manifest, entry), entry)
        return
    if plain_files and is_plain_model_file(text):
        from berth.importer import import_model

        with tempfile.TemporaryDirectory(prefix="berth-import-") as scratch:
            directory = Path(scratch) / Path(text).stem
            yield LocalBundle(text, directory, import_model(uri, directory, trust=trust))
        return
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive, tempfile.TemporaryDirectory(prefix="berth-unpack-") as scratch:
            yield LocalBundle(text, Path(scratch), packing.extract(archive, Path(scratch)))
        return
    with storage.local_directory(uri) as directory:
        manifest = read_manifest(directory)
        verify_directory(directory, manifest)
        yield LocalBundle(text, directory, manifest)


def read_manifest_at(uri: Uri, *, registry: Registry | None = None) -> Manifest:
    """The manifest of the bundle ``uri`` names, without loading (or, for a remote directory, downloading) its
    payload. A registered model's manifest is checked against the registry's digest; an archive is verified as
    it is unpacked; a directory's files are not hashed (that is :func:`open_bundle`)."""
    text = str(uri)
    if is_model_uri(text):
        entry, location = resolve(text, registry)
        return check_registered(read_manifest_at(location), entry)
    if packing.is_archive(uri):
        with storage.local_file(uri) as archive, tempfile.TemporaryDirectory(prefix="berth-unpack-") as scratch:
            return packing.extract(archive, Path(scratch))
    if storage.is_remote(uri):
        location = storage.join(text, MANIFEST_NAME)
        try:
            data = storage.read_bytes(location)
        except StorageError as exc:
            raise BundleError(f"{uri} is not a berth bundle: it has no {MANIFEST_NAME}") from exc
        return Manifest.from_json(data, location)
    return read_manifest(storage.local_path(uri))
