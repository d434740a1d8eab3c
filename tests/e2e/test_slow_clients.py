"""Slow and idle clients against a real server: they cannot lock other clients out.

Every test opens a bounded number of loopback connections and undoes what it changes.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.server_process import ServerProcess
from tests.serving.conftest import ROW

pytestmark = pytest.mark.slow

PARTIAL_HEADERS = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BOUND_S = 60


@contextlib.contextmanager
def slow_connections(server: ServerProcess, count: int,
                     payload: bytes = PARTIAL_HEADERS) -> Iterator[list[socket.socket]]:
    """``count`` connections that each sent ``payload`` (an unfinished request) and then went quiet."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(payload)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


@contextlib.contextmanager
def soft_fd_limit(limit: int) -> Iterator[None]:
    """Lower this process's soft open-file limit (inherited by a server started meanwhile), then restore it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(limit, hard), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(4096):
            data += chunk
    return data


def test_hundreds_of_idle_connections_do_not_lock_a_client_out(iris_bundle: Path) -> None:
    """Started under a soft limit of 256 files (as from a default shell), the server raises its own limit: 400
    held connections would otherwise exhaust it and leave accept() failing for everyone."""
    with soft_fd_limit(256):
        server = ServerProcess(str(iris_bundle), "--workers", "1", env={"BERTH_HEADER_TIMEOUT_S": "300"})
    try:
        server.wait_ready()
        with slow_connections(server, 400):
            response = httpx.post(server.url + "/predict", json={"features": ROW}, timeout=30)
            assert response.status_code == 200
    finally:
        server.stop()


def test_slowloris_connections_are_cut_off_after_the_header_timeout(iris_bundle: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "1", env={"BERTH_HEADER_TIMEOUT_S": "1"})
    try:
        server.wait_ready()
        with slow_connections(server, 50) as sockets, slow_connections(server, 10, b"") as silent:
            for sock in sockets:  # each closed by the server, after a 408
                assert read_until_closed(sock, BOUND_S).startswith(b"HTTP/1.1 408 ")
            for sock in silent:  # connected and never sent a byte: closed without an answer
                assert read_until_closed(sock, BOUND_S) == b""
        # a client that keeps dribbling bytes is cut off just the same: each byte does not buy more time
        with slow_connections(server, 1, b"P") as [sock]:
            started = time.monotonic()
            with contextlib.suppress(OSError):
                for byte in PARTIAL_HEADERS[1:] * 100:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.1)
                    if time.monotonic() - started > BOUND_S:
                        break
            assert read_until_closed(sock, BOUND_S).startswith(b"HTTP/1.1 408 ")
        assert httpx.post(server.url + "/predict", json={"features": ROW}, timeout=30).status_code == 200
    finally:
        server.stop()


def test_a_body_that_does_not_arrive_gets_408(iris_bundle: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "1", env={"BERTH_BODY_TIMEOUT_S": "1"})
    try:
        server.wait_ready()
        headers = PARTIAL_HEADERS + b"Content-Length: 1000\r\n\r\n" + b'{"features": ['
        with slow_connections(server, 5, headers) as sockets:
            for sock in sockets:
                answer = read_until_closed(sock, BOUND_S)
                assert answer.startswith(b"HTTP/1.1 408 ") and b"body_timeout" in answer
    finally:
        server.stop()


def test_past_the_connection_limit_clients_get_503_not_a_hang(iris_bundle: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "1",
                           env={"BERTH_MAX_CONNECTIONS": "20", "BERTH_HEADER_TIMEOUT_S": "300"})
    try:
        server.wait_ready()
        with slow_connections(server, 25):
            response = httpx.post(server.url + "/predict", json={"features": ROW}, timeout=30)
            assert response.status_code == 503
        # once they are gone the server answers again
        deadline = time.monotonic() + BOUND_S
        while (status := httpx.post(server.url + "/predict", json={"features": ROW}, timeout=30).status_code) != 200:
            assert status == 503 and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        server.stop()


def test_oversized_headers_get_431(iris_bundle: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "1")
    try:
        server.wait_ready()
        with slow_connections(server, 1, PARTIAL_HEADERS + b"X-Big: " + b"a" * 70_000) as [sock]:
            assert read_until_closed(sock, BOUND_S).startswith(b"HTTP/1.1 431 ")
        big_url = b"GET /health/live?" + b"q" * 70_000
        with slow_connections(server, 1, big_url) as [sock]:
            assert read_until_closed(sock, BOUND_S).startswith(b"HTTP/1.1 431 ")
        # a large but reasonable head still works
        headers = {f"x-filler-{i}": "v" * 1000 for i in range(30)}
        assert httpx.get(server.url + "/health/live", headers=headers, timeout=30).status_code == 200
    finally:
        server.stop()
