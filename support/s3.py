"""moto's S3-compatible server on loopback, and one bucket's view of it.

``loopback_s3()`` runs moto's threaded server on 127.0.0.1 and a free port; ``DUMMY_AWS_ENV`` and
``UNSET_AWS_ENV`` are what a process needs to talk to it and to nothing else (no instance metadata, no user
config). The test fixtures are in ``tests/s3_fixture.py``; the registry benchmark uses this directly.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
    """The modules the loopback server and berth's S3 store need that are not installed."""
    missing = []
    for name in REQUIRED_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # the parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


@contextmanager
def loopback_s3() -> Iterator[str]:
    """moto's S3-compatible HTTP server on 127.0.0.1 and a free port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@dataclass
class S3:
    """One user's view of the loopback S3 server: its endpoint and a bucket."""

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
    """Forget cached s3fs instances (and their listings): each user starts from what the server holds."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
