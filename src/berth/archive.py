"""The ``.berth`` archive format, written and read by berth's own code: a gzip-compressed POSIX tar of regular
files, the manifest first, then exactly the files it lists.

Reading does not use :mod:`tarfile` at all, neither its extraction (whose ``data`` filter has had published
bypasses: CVE-2025-4517, -4138, -4330, -4435 and CVE-2024-12718, unfixed in Python 3.11.7, among others) nor
its header parser (CVE-2024-6232, a ReDoS in pax headers; CVE-2025-8194, a loop on negative offsets; and it
reads a pax header of any size into memory). The reader here accepts a small, strict subset of the format:

- 512-byte POSIX ``ustar`` headers with a valid checksum and octal fields; pax extended headers (``x``) of at
  most 64 KiB, whose only honoured keys are ``path`` and ``size`` (the times and owners pax may also record
  are ignored; any other key is refused); regular files only: a link, device, fifo, directory, global header,
  GNU extension or sparse file anywhere refuses the archive;
- the first member is ``berth.json``, at most ``MAX_MANIFEST_BYTES``; it is read into memory and parsed
  (which validates every listed path: relative, normal, ASCII, no ``..``, no duplicates) before anything is
  written;
- every following member must be a file the manifest lists, not seen before, whose header size equals the
  manifest's size; its bytes are streamed with a running count (never past that size), hashed while they are
  written, and compared with the manifest's sha256; the archive ends (two zero blocks) once all are there;
- the total of the manifest's sizes and the number of files are bounded (``BERTH_ARCHIVE_MAX_BYTES``,
  ``BERTH_ARCHIVE_MAX_FILES``) and checked, with the free disk space, before the first byte is written.

Files are created by berth under the destination with ``O_EXCL | O_NOFOLLOW``, in directories berth creates;
nothing from the archive chooses a mode, an owner, a time or a link. Writing uses :mod:`tarfile`'s writer with
members berth builds itself (mode 0644, time 0, no owner), in a gzip stream without a timestamp, so packing
the same bundle twice gives the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from berth import config
from berth.errors import BundleError
from berth.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES, Manifest

BLOCK = 512
CHUNK = 1 << 20
MAX_PAX_BYTES = 64 << 10
DEFAULT_MAX_BYTES = 64 << 30
DEFAULT_MAX_FILES = 10_000
PAX_KEYS_IGNORED = frozenset({"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"})
TYPE_NAMES = {b"1": "a hard link", b"2": "a symbolic link", b"3": "a character device", b"4": "a block device",
              b"5": "a directory", b"6": "a fifo", b"7": "a contiguous file", b"g": "a global pax header",
              b"L": "a GNU long name", b"K": "a GNU long link name", b"S": "a GNU sparse file",
              b"D": "a GNU directory dump", b"M": "a GNU multi-volume file", b"V": "a volume label"}
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES  # total size of the payload files an archive may hold
    max_files: int = DEFAULT_MAX_FILES

    @classmethod
    def from_env(cls) -> Limits:
        return cls(config.archive_max_bytes(DEFAULT_MAX_BYTES), config.archive_max_files(DEFAULT_MAX_FILES))


@dataclass(frozen=True)
class Member:
    name: str
    size: int


# ----------------------------------------------------------------------------------------------- writing


def write(archive: Path, directory: Path, manifest: Manifest) -> None:
    """Write ``directory``'s manifest and the files it lists (nothing else) to the gzip tar ``archive``."""
    with archive.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6,
                                                  mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in [MANIFEST_NAME, *(entry.path for entry in manifest.files)]:
            path = directory / name
            info = tarfile.TarInfo(name)
            info.size = path.stat().st_size
            info.mode, info.mtime, info.type = 0o644, 0, tarfile.REGTYPE
            with path.open("rb") as handle:
                tar.addfile(info, handle)


# ----------------------------------------------------------------------------------------------- reading


class _Reader:
    """Strict, streaming reader of tar headers and member data over a decompressed stream."""

    def __init__(self, stream: BinaryIO, source: str) -> None:
        self.stream = stream
        self.source = source

    def fail(self, message: str) -> BundleError:
        return BundleError(f"{self.source} is not a valid berth archive: {message}")

    def read_exact(self, size: int) -> bytes:
        data = self.stream.read(size)
        if len(data) != size:
            raise self.fail("it is damaged or truncated (it ends in the middle of a member)")
        return data

    def next_member(self) -> Member | None:
        """The next regular file's header, or None at the end of the archive."""
        pax: dict[str, str] | None = None
        while True:
            block = self.stream.read(BLOCK)
            if not block and pax is None:
                raise self.fail("it is damaged or truncated (no end-of-archive marker)")
            if len(block) != BLOCK:
                raise self.fail("it is damaged or truncated (it ends in the middle of a header)")
            if block == bytes(BLOCK):
                if pax is not None:
                    raise self.fail("a pax header is followed by no member")
                return None
            self.check_header(block)
            kind = block[156:157]
            size = self.octal(block[124:136], "size")
            if kind == b"x":
                if pax is not None:
                    raise self.fail("two pax headers in a row")
                if size > MAX_PAX_BYTES:
                    raise self.fail(f"a pax header of {size} bytes (at most {MAX_PAX_BYTES})")
                pax = self.parse_pax(self.read_exact(size))
                self.skip_padding(size)
                continue
            name = self.header_name(block)
            if kind not in (b"0", b"\x00"):
                what = TYPE_NAMES.get(kind, f"an entry of type {kind!r}")
                raise self.fail(f"{name!r} is {what}; a berth archive holds regular files only")
            if pax is not None:
                name = pax.get("path", name)
                if "size" in pax:
                    size = self.decimal(pax["size"], "pax size")
            return Member(name, size)

    def check_header(self, block: bytes) -> None:
        if block[257:263] != b"ustar\x00" or block[263:265] != b"00":
            raise self.fail("a header that is not POSIX ustar")
        recorded = self.octal(block[148:156], "checksum")
        if recorded != sum(block[:148]) + 8 * 0x20 + sum(block[156:]):
            raise self.fail("a header with a wrong checksum (corrupt, or data where a header should be)")

    def header_name(self, block: bytes) -> str:
        name, prefix = block[0:100].split(b"\x00", 1)[0], block[345:500].split(b"\x00", 1)[0]
        raw = prefix + b"/" + name if prefix else name
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"a member name that is not ASCII: {raw[:80]!r}") from None

    def octal(self, field: bytes, what: str) -> int:
        text = field.rstrip(b"\x00 ").lstrip(b" ")
        if not text or len(text) > 11 or any(c not in b"01234567" for c in text):
            raise self.fail(f"a header whose {what} field is not an octal number")
        return int(text, 8)

    def decimal(self, text: str, what: str) -> int:
        if not text or len(text) > 15 or not text.isascii() or not text.isdigit():
            raise self.fail(f"a {what} that is not a decimal number: {text[:40]!r}")
        return int(text)

    def parse_pax(self, data: bytes) -> dict[str, str]:
        """pax records ``LENGTH KEY=VALUE\\n``: parsed by position, no regular expression."""
        records: dict[str, str] = {}
        position = 0
        while position < len(data):
            if data[position:] == bytes(len(data) - position):
                break  # tarfile pads nothing, but NUL padding is harmless
            space = data.find(b" ", position, position + 16)
            if space < 0:
                raise self.fail("a malformed pax record")
            length = self.decimal(data[position:space].decode("ascii", "replace"), "pax record length")
            end = position + length
            if length <= space - position + 1 or end > len(data) or data[end - 1:end] != b"\n":
                raise self.fail("a malformed pax record")
            key, equals, value = data[space + 1:end - 1].partition(b"=")
            if not equals:
                raise self.fail("a malformed pax record")
            try:
                key_text, value_text = key.decode("ascii"), value.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("a pax record that is not text") from None
            if key_text in ("path", "size"):
                if key_text in records:
                    raise self.fail(f"a pax header that sets {key_text} twice")
                records[key_text] = value_text
            elif key_text not in PAX_KEYS_IGNORED:
                raise self.fail(f"an unsupported pax record {key_text[:40]!r}")
            position = end
        return records

    def skip_padding(self, size: int) -> None:
        padding = -size % BLOCK
        if padding and self.read_exact(padding).strip(b"\x00"):
            raise self.fail("non-zero padding after a member")

    def stream_data(self, size: int, write: Callable[[bytes], object]) -> str:
        """Pass exactly ``size`` bytes of member data to ``write`` in chunks; returns their sha256."""
        digest = hashlib.sha256()
        remaining = size
        while remaining:
            chunk = self.stream.read(min(CHUNK, remaining))
            if not chunk:
                raise self.fail("it is damaged or truncated (it ends in the middle of a member)")
            remaining -= len(chunk)
            digest.update(chunk)
            write(chunk)
        self.skip_padding(size)
        return digest.hexdigest()


def _open_stream(archive: Path, source: str) -> gzip.GzipFile:
    with archive.open("rb") as handle:
        head = handle.read(2)
    if head != GZIP_MAGIC:
        raise BundleError(f"{source} is not a berth archive: it is not a gzip-compressed tar file (made by berth pack)")
    return gzip.GzipFile(archive, "rb")


def _create(directory: Path, relative: str) -> int:
    """Create ``directory/relative`` (a validated path) as a new regular file; returns its descriptor."""
    target = directory.joinpath(*relative.split("/"))
    parent = directory
    for part in relative.split("/")[:-1]:
        parent = parent / part
        try:
            parent.mkdir(mode=0o755)
        except FileExistsError:
            if parent.is_symlink() or not parent.is_dir():
                raise BundleError(f"cannot extract {relative}: {parent} is not a directory berth made") from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(target, flags, 0o644)


def read(archive: Path, directory: Path | None, *, limits: Limits | None = None) -> Manifest:
    """Check the archive and (when ``directory`` is given) extract the bundle into that empty directory.

    With ``directory=None`` the payload is streamed and hashed without writing anything (``inspect`` and
    ``verify`` of an archive). Raises :class:`~berth.errors.BundleError` naming the first problem.
    """
    limits = limits or Limits.from_env()
    source = archive.name
    if directory is not None and any(directory.iterdir()):
        raise BundleError(f"cannot extract {source} into {directory}: the directory is not empty")
    try:
        with _open_stream(archive, source) as stream:
            return _read(_Reader(stream, source), directory, limits)  # type: ignore[arg-type]
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:  # a cut or corrupted compressed stream
        raise BundleError(f"{source} is not a readable berth archive: the archive is damaged or truncated "
                          f"({' '.join(str(exc).split())})") from exc
    except OSError as exc:
        raise BundleError(f"{source} is not a readable berth archive: {' '.join(str(exc).split())}") from exc


def _read(reader: _Reader, directory: Path | None, limits: Limits) -> Manifest:
    first = reader.next_member()
    if first is None or first.name != MANIFEST_NAME:
        found = "nothing" if first is None else repr(first.name[:80])
        raise reader.fail(f"its first member must be {MANIFEST_NAME}, found {found}")
    if first.size > MAX_MANIFEST_BYTES:
        raise reader.fail(f"its {MANIFEST_NAME} is {first.size} bytes (at most {MAX_MANIFEST_BYTES})")
    buffer = io.BytesIO()
    reader.stream_data(first.size, buffer.write)
    manifest = Manifest.from_json(buffer.getvalue(), f"{reader.source}/{MANIFEST_NAME}")
    expected = {entry.path: entry for entry in manifest.files}
    check_limits(manifest, limits, reader.source, directory)
    if directory is not None:
        (directory / MANIFEST_NAME).write_bytes(buffer.getvalue())
    seen: set[str] = set()
    while True:
        member = reader.next_member()
        if member is None:
            break
        entry = expected.get(member.name)
        if entry is None:
            raise reader.fail(f"the member {member.name[:120]!r} is not a file its manifest lists")
        if member.name in seen:
            raise reader.fail(f"the member {member.name!r} appears twice")
        seen.add(member.name)
        if member.size != entry.size:
            raise reader.fail(f"the member {member.name!r} is {member.size} bytes, its manifest says {entry.size}")
        digest = _extract_member(reader, directory, member)
        if digest != entry.sha256:
            raise reader.fail(f"the sha256 of {member.name!r} does not match its manifest")
    missing = sorted(set(expected) - seen)
    if missing:
        raise reader.fail(f"it lacks {', '.join(missing[:5])}, which its manifest lists")
    return manifest


def _extract_member(reader: _Reader, directory: Path | None, member: Member) -> str:
    if directory is None:
        return reader.stream_data(member.size, lambda chunk: None)
    descriptor = _create(directory, member.name)
    with os.fdopen(descriptor, "wb", buffering=0) as handle:
        return reader.stream_data(member.size, handle.write)


def check_limits(manifest: Manifest, limits: Limits, source: str, directory: Path | None) -> None:
    """The manifest's totals against the limits and the free space, before any payload byte is written."""
    if len(manifest.files) > limits.max_files:
        raise BundleError(f"{source} lists {len(manifest.files)} files; berth extracts at most {limits.max_files} "
                          "(BERTH_ARCHIVE_MAX_FILES)")
    if manifest.size > limits.max_bytes:
        raise BundleError(f"{source} holds {manifest.size} bytes of payload; berth extracts at most "
                          f"{limits.max_bytes} (BERTH_ARCHIVE_MAX_BYTES)")
    if directory is not None:
        free = shutil.disk_usage(directory).free
        if manifest.size > free:
            raise BundleError(f"{source} holds {manifest.size} bytes of payload, but only {free} bytes are free "
                              f"under {directory}")
