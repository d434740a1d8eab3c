"""One-file transport of a bundle: a gzip-compressed tar archive, conventionally ``NAME.berth``.

Packing verifies the bundle first; unpacking extracts with tarfile's ``data`` filter (no absolute paths, no
links out of the target, no device files) into a staging directory, verifies, then renames into place.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

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
        with storage.staged_file(output) as archive, tarfile.open(archive, "w:gz", compresslevel=6) as tar:
            tar.add(directory / MANIFEST_NAME, arcname=MANIFEST_NAME)
            for entry in manifest.files:
                tar.add(directory / entry.path, arcname=entry.path)
    return manifest


def extract(archive: Path, directory: Path) -> Manifest:
    """Extract a packed bundle into the empty ``directory`` and verify it."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(directory, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleError(f"{archive.name} is not a readable berth archive: {archive_problem(archive, exc)}") from exc
    manifest = read_manifest(directory)
    verify_directory(directory, manifest)
    return manifest


def archive_problem(archive: Path, exc: BaseException) -> str:
    """One line on why ``archive`` could not be read (tarfile's own message spans several lines)."""
    if isinstance(exc, tarfile.ReadError | EOFError):
        with open(archive, "rb") as file:
            gzip = file.read(2) == b"\x1f\x8b"
        return ("the archive is damaged or truncated" if gzip else
                "it is not a gzip-compressed tar file (made by berth pack)")
    return " ".join(str(exc).split())


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
