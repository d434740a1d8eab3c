"""Where registered bundles live: a local directory or any fsspec URL (``s3://bucket/prefix``), via berth.storage.

Each registration uploads to a fresh location ``ROOT/NAME/<digest12>-<random>``, never written twice. The
location only becomes a version when the database row naming it is committed; until then it is "pending" and a
crashed registration's leftovers are deleted by a later run (see ``berth.registry.store``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from berth import storage
from berth.errors import IntegrityError, StorageError
from berth.manifest import MANIFEST_NAME, Manifest

CHUNK = 1 << 20


def normalize_root(root: str | os.PathLike[str]) -> str:
    text = str(root)
    if storage.is_remote(text):
        return text.rstrip("/")
    return str(storage.local_path(text).absolute())


class ArtifactStore:
    """Upload, verify and delete bundles under one root; local roots get atomic directory renames."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = normalize_root(root)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.root!r})"

    @property
    def remote(self) -> bool:
        return storage.is_remote(self.root)

    def new_location(self, name: str, digest: str) -> str:
        short = digest.split(":", 1)[-1][:12]
        return storage.join(self.root, name, f"{short}-{uuid.uuid4().hex[:12]}")

    def upload(self, source: Path, location: str, manifest: Manifest,
               on_file: Callable[[int], None] | None = None) -> None:
        """Copy the manifest's files (then ``berth.json``, last) from ``source`` to ``location``."""
        names = [entry.path for entry in manifest.files]
        if not storage.is_remote(location):
            self._copy_local(source, Path(location), names, on_file)
            return
        fs, root = storage.filesystem(location)
        try:
            for count, name in enumerate([*names, MANIFEST_NAME], start=1):
                fs.put_file(str(source / name), f"{root}/{name}")
                if on_file:
                    on_file(count)
        except OSError as exc:
            raise StorageError(f"cannot upload to {location}: {exc}") from exc

    @staticmethod
    def _copy_local(source: Path, target: Path, names: list[str],
                    on_file: Callable[[int], None] | None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".berth-tmp-{target.name}")
        try:
            for count, name in enumerate([*names, MANIFEST_NAME], start=1):
                destination = staged / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / name, destination)
                if on_file:
                    on_file(count)
            staged.rename(target)
        except OSError as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise StorageError(f"cannot copy the bundle to {target}: {exc}") from exc

    def verify(self, location: str, manifest: Manifest) -> None:
        """Read every file back from the store and check size and sha256 against the manifest."""
        problems = []
        for entry in manifest.files:
            try:
                digest, size = hash_stream(storage.join(location, entry.path))
            except (OSError, StorageError) as exc:
                problems.append({"loc": ["files", entry.path], "msg": f"unreadable after upload: {exc}"})
                continue
            if size != entry.size or digest != entry.sha256:
                problems.append({"loc": ["files", entry.path], "msg": "stored copy does not match the manifest"})
        if problems:
            raise IntegrityError(f"the copy of the bundle at {location} failed verification; it was not "
                                 "registered", problems)

    def delete(self, location: str) -> None:
        """Remove a bundle location and everything under it; a missing location is fine."""
        if not storage.is_remote(location):
            path = Path(location)
            shutil.rmtree(path.with_name(f".berth-tmp-{path.name}"), ignore_errors=True)
            shutil.rmtree(path, ignore_errors=True)
            return
        fs, root = storage.filesystem(location)
        try:
            if fs.exists(root):
                fs.rm(root, recursive=True)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete {location}: {exc}") from exc


def hash_stream(uri: str) -> tuple[str, int]:
    """sha256 and size of a file, read in chunks (locally or through fsspec)."""
    digest = hashlib.sha256()
    size = 0
    if storage.is_remote(uri):
        fs, path = storage.filesystem(uri)
        handle = fs.open(path, "rb", block_size=8 * CHUNK, cache_type="none")
    else:
        handle = storage.local_path(uri).open("rb")
    with handle:
        while chunk := handle.read(8 * CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
