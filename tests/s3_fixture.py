"""The loopback S3 server for tests (``support.s3``): one per session, an empty bucket per test.

Registered in tests/conftest.py; use the ``s3`` fixture, which points
berth at the server (``BERTH_S3_ENDPOINT_URL``), sets dummy AWS credentials, and creates an empty bucket.

Without moto[server] or s3fs the tests that use it are skipped, except under ``CI=true``, where a missing
dependency is an install bug and fails them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from support.s3 import DUMMY_AWS_ENV, ENDPOINT_ENV, S3, UNSET_AWS_ENV, clear_s3fs_caches, loopback_s3, missing_modules

__all__ = ["S3", "s3", "s3_endpoint", "skip_or_fail"]


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI=true a missing test dependency must fail the run, not hide in a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible HTTP server on 127.0.0.1 and a free port, for the whole session."""
    missing = missing_modules()
    if missing:
        skip_or_fail(f"the loopback S3 server needs moto[server] and s3fs; missing: {', '.join(missing)} "
                     "(install them with: pip install -e '.[s3,dev]')")
    with loopback_s3() as endpoint:
        yield endpoint


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
