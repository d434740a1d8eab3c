"""PostgreSQL for tests: one server per session (``support.postgres``), a fresh empty database per test.

Registered in tests/conftest.py; use the ``postgres_url``
fixture (a ``postgresql+psycopg://`` URL). Without PostgreSQL (``scripts/system-packages`` installs it) the tests
that need it skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from support.postgres import PostgresServer, missing_reason, running_postgres
from tests.s3_fixture import skip_or_fail


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = missing_reason()
    if reason:
        skip_or_fail(reason)
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server."""
    name = f"berth_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
