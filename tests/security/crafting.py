"""Build hostile ``.berth`` archives byte by byte: any member type, any name, headers that lie about sizes,
data that does not match its header, gzip bombs. Headers come from ``tarfile.TarInfo.tobytes`` (so they are
what real tools write); the data after each header is whatever the test says.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from dataclasses import dataclass, field
from typing import Any

BLOCK = 512
ZEROS_64M_GZ = gzip.compress(bytes(64 << 20), compresslevel=9, mtime=0)  # ~64 kB that expand to 64 MiB


@dataclass
class Entry:
    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    size: int | None = None  # what the header claims; default len(data)
    linkname: str = ""
    pad: bool = True  # pad the data to a whole block, as tar does
    pax: dict[str, str] = field(default_factory=dict)

    def header(self) -> bytes:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.size = len(self.data) if self.size is None else self.size
        info.linkname = self.linkname
        info.mode = 0o644
        if self.type in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = 1, 3
        info.pax_headers = dict(self.pax)
        if self.type not in tarfile.REGULAR_TYPES:
            info.size = 0 if self.size is None else self.size
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")

    def to_bytes(self) -> bytes:
        padding = -len(self.data) % BLOCK if self.pad else 0
        return self.header() + self.data + bytes(padding)


def tar(entries: list[Entry], *, end: bool = True) -> bytes:
    body = b"".join(e.to_bytes() for e in entries)
    return body + (bytes(2 * BLOCK) if end else b"")


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def manifest_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def bomb(prefix: bytes, gibibytes: int) -> bytes:
    """``prefix`` (tar bytes, gzip-compressed here) followed by ``gibibytes`` GiB of zeros, as concatenated gzip
    members: a valid gzip stream of about 1 MB per GiB that decompresses to the prefix and then the zeros."""
    return gz(prefix) + ZEROS_64M_GZ * (16 * gibibytes)
