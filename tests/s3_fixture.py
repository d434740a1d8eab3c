"""A real S3-compatible endpoint on loopback for tests: moto's threaded server on 127.0.0.1, a free port.

Use it from a test module with ``pytest_plugins = ["tests.s3_fixture"]`` and the ``s3`` fixture, which points
berth at the server (``BERTH_S3_ENDPOINT_URL``), sets dummy AWS credentials, and creates an empty bucket.

Without moto[server] or s3fs the tests that use it are skipped, except under ``CI=true``, where a missing
dependency is an install bug and fails them instead.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ENDPOINT_ENV = "BERTH_S3_ENDPOINT_URL"
REQUIRED_MODULES = ("moto", "moto.server", "flask", "s3fs")
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never ask an instance metadata service for credentials or a region, and read no user config.
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
UNSET_AWS_ENV = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3")


def missing_modules() -> list[str]:
    missing = []
    for name in REQUIRED_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # the parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true a missing S3 test dependency must fail the run, not hide in a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


@dataclass
class S3:
    """One test's view of the loopback S3 server: its endpoint and an empty bucket."""

    endpoint: str
    bucket: str

    def url(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}" if key else f"s3://{self.bucket}"

    def fresh_fs(self) -> Any:
        """A new s3fs filesystem that shares no instance or listing cache with the one berth uses."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                 client_kwargs={"endpoint_url": self.endpoint})

    def list_keys(self, prefix: str = "") -> list[str]:
        """Object keys under ``prefix``, relative to the bucket, read fresh from the server."""
        fs = self.fresh_fs()
        root = f"{self.bucket}/{prefix}".rstrip("/")
        if not fs.exists(root):
            return []
        found = fs.find(root)
        return sorted(path.removeprefix(f"{self.bucket}/") for path in found)


def clear_s3fs_caches() -> None:
    """Forget cached s3fs instances (and their listings): each test starts from what the server holds."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible HTTP server on 127.0.0.1 and a free port, for the whole session."""
    missing = missing_modules()
    if missing:
        skip_or_fail(f"the loopback S3 server needs moto[server] and s3fs; missing: {', '.join(missing)} "
                     "(install them with: pip install -e '.[s3,dev]')")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """Point berth at the loopback server with dummy credentials, and create an empty bucket for this test."""
    for name, value in DUMMY_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(ENDPOINT_ENV, s3_endpoint)
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)

    clear_s3fs_caches()
    store = S3(endpoint=s3_endpoint, bucket=f"berth-test-{uuid.uuid4().hex[:12]}")
    store.fresh_fs().mkdir(store.bucket)
    try:
        yield store
    finally:
        clear_s3fs_caches()
