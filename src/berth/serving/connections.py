"""Bounds on what clients can hold: file descriptors, connections, and time to send a request.

* **File descriptors.** At startup the soft ``RLIMIT_NOFILE`` is raised to the hard limit (capped where the
  kernel caps it), so a few hundred idle connections cannot exhaust a default soft limit of 1024 (or 256 on
  macOS) and leave ``accept`` failing for every other client.
* **Connections.** uvicorn's ``limit_concurrency``: past it, new requests get 503 at once instead of waiting.
  Sized from the descriptor budget unless set (``max_connections``), leaving room for models, logs and
  the metrics files.
* **Header deadline.** uvicorn bounds idle keep-alive connections but not a client that sends its headers a
  byte at a time (slowloris): every byte restarts nothing and the connection is held forever. The protocol
  below gives each request ``header_timeout_s`` from the connection (or the previous response) to its last
  header; a client still sending headers then gets 408 and the connection is closed. The body has its own
  deadline (``body_timeout_s``, in :class:`berth.serving.middleware.BodyLimitMiddleware`).
* **Header size.** uvicorn's httptools protocol buffers a request line and headers of any size; past
  :data:`MAX_HEADER_BYTES` without a complete head, the client gets 431 and the connection is closed.

The same protocol class also joins each response's head to its body (:class:`JoinedHead`): uvicorn writes the
status line and headers, then the body, and each write is a ``send`` system call of its own on an idle socket,
about a sixth of a worker's samples at c=64 (py-spy, bench/results/request_path.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

log = logging.getLogger("berth.serve")

RESERVED_FDS = 256  # model files, thread pools, logs, metrics files, the listening socket
MAX_AUTO_CONNECTIONS = 4096
DARWIN_OPEN_MAX = 10240  # macOS refuses a soft limit above OPEN_MAX
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; nginx allows 32 KiB by default, h11 16 KiB


def _plain_response(status: str, text: str) -> bytes:
    body = text.encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n").encode() + body


TIMEOUT_RESPONSE = _plain_response("408 Request Timeout", "request headers not received in time")
TOO_LARGE_RESPONSE = _plain_response("431 Request Header Fields Too Large",
                                     f"request line and headers are larger than {MAX_HEADER_BYTES} bytes")


def raise_fd_limit() -> int:
    """Raise this process's soft descriptor limit to its hard limit; returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if sys.platform == "darwin":
        target = min(target, DARWIN_OPEN_MAX)
    if soft != resource.RLIM_INFINITY and target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, target, exc)
    return int(soft) if soft != resource.RLIM_INFINITY else 65536


def connection_limit(configured: int, fd_limit: int) -> int | None:
    """Open connections one worker accepts before answering 503: as configured, else from the fd budget."""
    if configured:
        return configured
    if fd_limit <= 0:
        return None
    return max(16, min(MAX_AUTO_CONNECTIONS, fd_limit - RESERVED_FDS))


class JoinedHead:
    """A transport for one request/response cycle that holds the response's head until the first body bytes
    (or the end of the response, or a close) and sends both in one write.

    Only the first write that is a final status line (``HTTP/1.x`` and not ``1xx``) is held: an interim
    ``100 Continue`` goes out at once, and everything after the head passes straight through.
    """

    __slots__ = ("head_seen", "held", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.held = b""
        self.head_seen = False

    def write(self, data: bytes) -> None:
        if self.held:
            data, self.held = self.held + data, b""
        elif not self.head_seen and data.startswith(b"HTTP/1.") and data[9:10] != b"1":
            self.head_seen = True
            self.held = data
            return
        self.transport.write(data)

    def flush(self) -> None:
        if self.held:
            data, self.held = self.held, b""
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...: the real transport's
        return getattr(self.transport, name)


def header_deadline_protocol(base: type[asyncio.Protocol], timeout_s: float) -> type[asyncio.Protocol]:
    """``base`` (a uvicorn HTTP protocol class) with a deadline on receiving each request's headers, and each
    response's head joined to its body (:class:`JoinedHead`)."""

    class HeaderDeadline(base):  # type: ignore[valid-type, misc]
        header_timeout_s = timeout_s

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._berth_timer: asyncio.TimerHandle | None = None
            self._berth_partial = False
            self._berth_header_bytes = 0
            self._berth_arm()

        def data_received(self, data: bytes) -> None:
            waiting = self._berth_waiting()
            if waiting:
                self._berth_partial = True
                self._berth_header_bytes += len(data)
            super().data_received(data)
            if waiting and self._berth_waiting() and self._berth_header_bytes > MAX_HEADER_BYTES:
                self._berth_reject(TOO_LARGE_RESPONSE)  # still no complete request line and headers

        def on_headers_complete(self) -> None:
            before = getattr(self, "cycle", None)
            super().on_headers_complete()
            cycle = getattr(self, "cycle", None)
            if cycle is not None and cycle is not before:
                cycle.transport = JoinedHead(cycle.transport)

        def on_response_complete(self) -> None:
            cycle = getattr(self, "cycle", None)
            if cycle is not None and isinstance(cycle.transport, JoinedHead):
                cycle.transport.flush()  # a response without body bytes (HEAD)
            super().on_response_complete()
            self._berth_partial = False
            self._berth_header_bytes = 0
            self._berth_arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._berth_timer is not None:
                self._berth_timer.cancel()
            super().connection_lost(exc)

        def _berth_waiting(self) -> bool:
            cycle = getattr(self, "cycle", None)
            return cycle is None or cycle.response_complete

        def _berth_arm(self) -> None:
            if self._berth_timer is not None:
                self._berth_timer.cancel()
            self._berth_timer = self.loop.call_later(self.header_timeout_s, self._berth_expired)

        def _berth_expired(self) -> None:
            self._berth_timer = None
            transport = self.transport
            if transport is None or transport.is_closing() or not self._berth_waiting():
                return  # a request is being handled; the next response re-arms the deadline
            if self._berth_partial:
                self._berth_reject(TIMEOUT_RESPONSE)
            else:
                transport.close()

        def _berth_reject(self, response: bytes) -> None:
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(response)
                transport.close()

    HeaderDeadline.__name__ = HeaderDeadline.__qualname__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline
