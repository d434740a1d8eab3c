"""One-file transport of a bundle: a gzip-compressed tar archive, conventionally ``NAME.berth``.

Packing verifies the bundle first and writes only the manifest and the files it lists; unpacking reads the
archive with berth's own strict reader (:mod:`berth.archive`: regular files the manifest lists, sizes and
hashes checked while streaming, never ``tarfile`` extraction) into a staging directory, then renames it into
place.
"""

from __future__ import annotations

import os
from pathlib import Path

from berth import archive as archive_format
from berth import storage
from berth.errors import BundleError
from berth.manifest import MANIFEST_NAME, Manifest, read_manifest, verify_directory

SUFFIX = ".berth"


def pack(bundle: str | os.PathLike[str], output: str | os.PathLike[str], *, overwrite: bool = False) -> Manifest:
    """Write the verified bundle at ``bundle`` to the archive ``output`` (a path or an fsspec URL)."""
    if storage.exists(output) and not overwrite:
        raise BundleError(f"{output} already exists; pass overwrite=True (--overwrite) to replace it")
    with storage.local_directory(bundle) as directory:
        manifest = read_manifest(directory)
        verify_directory(directory, manifest)
        with storage.staged_file(output) as archive:
            archive_format.write(archive, directory, manifest)
    return manifest


def extract(archive: Path, directory: Path) -> Manifest:
    """Extract a packed bundle into the empty ``directory``, every file checked against the manifest."""
    return archive_format.read(archive, directory)


def check_archive(archive: Path) -> Manifest:
    """Read and check a packed bundle without writing anything: its manifest, once every file is verified."""
    return archive_format.read(archive, None)


def unpack(archive: str | os.PathLike[str], output: str | os.PathLike[str], *, overwrite: bool = False) -> Manifest:
    """Unpack the archive at ``archive`` into the bundle directory ``output`` (a path or an fsspec URL)."""
    if not storage.is_remote(archive) and storage.local_path(archive).is_dir():
        raise BundleError(f"{archive} is a directory, not a {SUFFIX} archive (berth pack writes one)")
    if storage.exists(storage.join(str(output), MANIFEST_NAME)) and not overwrite:
        raise BundleError(f"{output} already holds a bundle; pass overwrite=True (--overwrite) to replace it")
    with storage.local_file(archive) as local, storage.staging_directory(output) as staged:
        manifest = extract(local, staged)
        storage.publish(staged, output, MANIFEST_NAME, overwrite=overwrite)
    return manifest


def is_archive(uri: str | os.PathLike[str]) -> bool:
    if storage.is_remote(uri):
        return str(uri).endswith(SUFFIX)
    return storage.local_path(uri).is_file()
