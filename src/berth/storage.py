"""Local paths and fsspec URLs (``s3://``, ``gs://``, ``memory://``...) for bundles, with atomic publication.

A bundle is valid only once its manifest exists and every file matches it. Locally a bundle is written in a
hidden sibling directory and renamed into place, which is atomic. Remote stores have no rename of a directory,
so payload files go up first and the manifest last: an interrupted upload leaves no manifest, hence no bundle.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from berth import config
from berth.errors import BundleError, StorageError


def is_remote(uri: str | os.PathLike[str]) -> bool:
    text = str(uri)
    return "://" in text and not text.startswith("file://")


def local_path(uri: str | os.PathLike[str]) -> Path:
    text = str(uri)
    return Path(text.removeprefix("file://")).expanduser()


def storage_options(uri: str) -> dict[str, Any]:
    """Options for fsspec from berth's environment: an S3 endpoint for S3-compatible servers."""
    endpoint = config.s3_endpoint_url() if uri.startswith(("s3://", "s3a://")) else None
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def filesystem(uri: str) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri, **storage_options(uri))
    except (ImportError, ValueError) as exc:
        raise StorageError(f"cannot open {uri}: {exc}") from exc


def join(uri: str, *parts: str) -> str:
    return "/".join([str(uri).rstrip("/"), *parts])


def read_bytes(uri: str | os.PathLike[str]) -> bytes:
    try:
        if not is_remote(uri):
            return local_path(uri).read_bytes()
        fs, path = filesystem(str(uri))
        return fs.cat_file(path)
    except FileNotFoundError as exc:
        raise StorageError(f"not found: {uri}") from exc
    except OSError as exc:
        raise StorageError(f"cannot read {uri}: {exc}") from exc


def exists(uri: str | os.PathLike[str]) -> bool:
    if not is_remote(uri):
        return local_path(uri).exists()
    fs, path = filesystem(str(uri))
    return bool(fs.exists(path))


@contextmanager
def staging_directory(target: str | os.PathLike[str]) -> Iterator[Path]:
    """A scratch directory on the same filesystem as a local target (so a rename can publish it)."""
    if is_remote(target):
        scratch = Path(tempfile.mkdtemp(prefix="berth-"))
    else:
        parent = local_path(target).absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        scratch = parent / f".berth-tmp-{local_path(target).name}-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def publish(staged: Path, target: str | os.PathLike[str], manifest_name: str, *, overwrite: bool) -> None:
    """Move a complete, staged bundle directory to ``target``; the manifest is the last thing to appear."""
    if is_remote(target):
        _upload(staged, str(target), manifest_name, overwrite=overwrite)
        return
    destination = local_path(target).absolute()
    if destination.exists():
        if not overwrite:
            raise BundleError(f"{destination} already exists; pass overwrite=True (--overwrite) to replace it")
        if destination.is_dir() and any(destination.iterdir()) and not (destination / manifest_name).exists():
            raise BundleError(f"{destination} exists and is not a bundle; refusing to replace it")
        retired = destination.with_name(f".berth-old-{destination.name}-{uuid.uuid4().hex[:8]}")
        destination.rename(retired)
        staged.rename(destination)
        shutil.rmtree(retired, ignore_errors=True) if retired.is_dir() else retired.unlink()
    else:
        staged.rename(destination)


def _upload(staged: Path, target: str, manifest_name: str, *, overwrite: bool) -> None:
    fs, root = filesystem(target)
    manifest_key = f"{root.rstrip('/')}/{manifest_name}"
    try:
        if fs.exists(manifest_key):
            if not overwrite:
                raise BundleError(f"{target} already holds a bundle; pass overwrite=True (--overwrite)")
            fs.rm(manifest_key)  # from here on the old bundle is invalid, never half-new
        for file in sorted(staged.rglob("*")):
            relative = file.relative_to(staged).as_posix()
            if file.is_file() and relative != manifest_name:
                fs.put_file(str(file), f"{root.rstrip('/')}/{relative}")
        fs.put_file(str(staged / manifest_name), manifest_key)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc}") from exc


@contextmanager
def local_directory(uri: str | os.PathLike[str]) -> Iterator[Path]:
    """A local directory holding the bundle at ``uri``: the path itself, or a downloaded temporary copy."""
    if not is_remote(uri):
        yield local_path(uri)
        return
    fs, root = filesystem(str(uri))
    scratch = Path(tempfile.mkdtemp(prefix="berth-dl-"))
    try:
        try:
            fs.get(root.rstrip("/") + "/", str(scratch), recursive=True)
        except FileNotFoundError as exc:
            raise StorageError(f"not found: {uri}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc}") from exc
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def staged_file(output: str | os.PathLike[str]) -> Iterator[Path]:
    """A local file to write to, moved (or uploaded) to ``output`` only if the block ends without error."""
    if is_remote(output):
        with tempfile.TemporaryDirectory(prefix="berth-out-") as scratch:
            local = Path(scratch) / Path(str(output)).name
            yield local
            fs, remote = filesystem(str(output))
            try:
                fs.put_file(str(local), remote)
            except OSError as exc:
                raise StorageError(f"cannot write {output}: {exc}") from exc
        return
    target = local_path(output).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        yield staged
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)


@contextmanager
def local_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """The file as a local path: the path itself, or a downloaded temporary copy of a URL."""
    if not is_remote(path):
        local = local_path(path)
        if not local.is_file():
            raise StorageError(f"not found: {path}")
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="berth-file-") as scratch:
        local = Path(scratch) / Path(str(path)).name
        local.write_bytes(read_bytes(path))
        yield local
