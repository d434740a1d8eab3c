"""The manifest, ``berth.json``: everything needed to verify, load and monitor a bundle; reading and verifying.

The read side of a bundle: :func:`read_manifest` and :func:`verify_directory` need nothing heavier than the
standard library (no numpy, pandas or flavors), so the registry, packing and ``berth inspect`` stay light.
Writing a bundle is :mod:`berth.bundle`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from berth import manifest_rules
from berth.errors import BundleError, IntegrityError
from berth.signature import Signature, json_ready

MANIFEST_NAME = "berth.json"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 32 << 20  # a manifest holds reference statistics: large, but bounded


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the bundle directory, with forward slashes
    sha256: str
    size: int


@dataclass
class Manifest:
    name: str
    flavor: str
    format: str  # payload format: skops, joblib, pickle, onnx, keras, torchscript, torch_export, ...
    created_at: str
    python: str
    libraries: dict[str, str]
    files: list[FileEntry]
    signature: Signature | None = None
    flavor_options: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    lineage: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    berth_version: str = ""
    compiled: dict[str, Any] | None = None  # the compiled twin's proof, or why there is none (berth.compile)
    format_version: int = FORMAT_VERSION

    @property
    def content_digest(self) -> str:
        """sha256 over the payload files' paths and digests: equal bundles share it, whatever their metadata."""
        listing = "\n".join(f"{f.path}:{f.sha256}" for f in sorted(self.files, key=lambda f: f.path))
        return "sha256:" + hashlib.sha256(listing.encode()).hexdigest()

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["signature"] = self.signature.to_dict() if self.signature else None
        return json_ready(data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, default=str) + "\n"

    def check(self) -> Manifest:
        """Hold this manifest to the rules a loaded one must pass (see :mod:`berth.manifest_rules`)."""
        manifest_rules.check(self.to_dict())
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise BundleError(f"malformed manifest: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
                raise BundleError(f"unsupported bundle format version {version!r}; this berth reads up to "
                                  f"{FORMAT_VERSION}: upgrade berth")
            raise BundleError(f"malformed manifest: format_version must be an integer from 1 to {FORMAT_VERSION}")
        manifest_rules.check(data)
        try:
            values = dict(data)
            values["files"] = [FileEntry(**f) for f in data["files"]]
            values["signature"] = Signature.from_dict(data["signature"]) if data.get("signature") else None
            known = cls.__dataclass_fields__.keys()
            return cls(**{k: v for k, v in values.items() if k in known})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"malformed manifest: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = MANIFEST_NAME) -> Manifest:
        if len(text) > MAX_MANIFEST_BYTES:
            raise BundleError(f"{source} is {len(text)} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurd nesting
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise BundleError(f"{source} is not valid JSON: {reason}") from None
        if not isinstance(data, dict):
            raise BundleError(f"{source} must hold a JSON object, not {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except BundleError as exc:
            raise BundleError(f"{source}: {exc.message}", exc.details) from None


def sanitize_params(params: dict[str, Any]) -> dict[str, Any]:
    """Keep params JSON-ready: nested estimators and other objects become their repr."""
    clean: dict[str, Any] = {}
    for key, value in params.items():
        value = json_ready(value)
        if not isinstance(value, str | int | float | bool | type(None) | list | dict):
            value = repr(value)
        clean[str(key)] = value
    return clean


def sha256_file(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def hash_files(directory: Path, names: list[str]) -> list[FileEntry]:
    entries = []
    for name in names:
        target = directory / name
        files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
        for file in files:
            entries.append(FileEntry(file.relative_to(directory).as_posix(), sha256_file(file), file.stat().st_size))
    return entries


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        if not directory.exists():
            raise BundleError(f"no bundle at {directory}: the path does not exist")
        raise BundleError(f"{directory} is not a berth bundle: it has no {MANIFEST_NAME}")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"{path} is {path.stat().st_size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
    return Manifest.from_json(path.read_bytes(), str(path))


def verify_directory(directory: Path, manifest: Manifest) -> None:
    """Check every payload file's size and sha256 against the manifest; name each file that differs."""
    problems = []
    root = directory.resolve()
    for entry in manifest.files:
        file = (directory / entry.path).resolve()
        if not file.is_relative_to(root):
            problems.append({"loc": ["files", entry.path], "msg": "path leaves the bundle directory"})
        elif not file.is_file():
            problems.append({"loc": ["files", entry.path], "msg": "file is missing"})
        elif file.stat().st_size != entry.size:
            problems.append({"loc": ["files", entry.path],
                             "msg": f"size is {file.stat().st_size} bytes, the manifest says {entry.size}"})
        elif sha256_file(file) != entry.sha256:
            problems.append({"loc": ["files", entry.path], "msg": "sha256 does not match the manifest"})
    if problems:
        names = ", ".join(f"{p['loc'][1]} ({p['msg']})" for p in problems)
        raise IntegrityError(f"bundle {directory} failed verification: {names}; refusing to load it", problems)
