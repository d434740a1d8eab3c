"""The registry database: engines for SQLite and PostgreSQL, write transactions that serialise, migrations.

* SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (the write lock is taken at once, so two
  writers never both read "last version is 4" and the loser gets a clean wait instead of a deadlock), with a
  60 s busy timeout and the WAL journal so readers never wait for a writer.
* PostgreSQL: writers lock the model's row (``SELECT ... FOR UPDATE``); the unique constraints catch what a
  lock cannot (two processes creating the same model), and the transaction is retried.
* Migrations run under a lock (SQLite's write lock, a PostgreSQL advisory lock), so processes that start
  together on a fresh database upgrade it once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from berth.errors import RegistryError, RegistrySchemaError
from berth.registry.schema import VERSION_TABLE, Base

T = TypeVar("T")
BUSY_TIMEOUT_S = 60
RETRIES = 12
MIGRATION_LOCK_KEY = 0x6265727468  # "berth": the PostgreSQL advisory lock serialising migrations
WRITE_OPTION = "berth_write"


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 (the driver berth's ``postgres`` extra installs)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def display_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return url


def create_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise RegistryError(f"invalid registry URL {url!r}: {error}") from error
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return sqlite_engine(url, parsed.database)
        if backend == "postgresql":
            return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=8)
    except (ImportError, exc.NoSuchModuleError) as error:
        raise RegistryError(f"cannot use {display_url(url)}: {error} (for PostgreSQL install berth[postgres])") \
            from error
    raise RegistryError(f"unsupported registry database {display_url(url)}: use sqlite:///PATH or "
                        "postgresql+psycopg://USER@HOST/DB")


def sqlite_engine(url: str, database: str | None) -> Engine:
    if not database or database == ":memory:":
        raise RegistryError("the registry needs a database file: sqlite:///PATH (an in-memory SQLite database "
                            "would vanish with each connection)")
    Path(database).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        with suppress(Exception):  # another process holds the lock now: a later connect sets it
            cursor.execute("PRAGMA journal_mode = WAL")  # persistent; a no-op once set
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(WRITE_OPTION)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def poll_engine(engine: Engine) -> Engine:
    """For the alias poll: PostgreSQL in autocommit without a pre-ping, so a lookup is one round trip (a dropped
    connection costs one retry instead). SQLite needs nothing of the sort: it is in-process."""
    if is_sqlite(engine):
        return engine
    return sa.create_engine(engine.url, pool_size=1, max_overflow=8, pool_recycle=1800,
                            isolation_level="AUTOCOMMIT")


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


@contextmanager
def write_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction: SQLite's write lock taken at BEGIN; commit at the end."""
    with engine.connect() as connection:
        connection.execution_options(**{WRITE_OPTION: True})
        with connection.begin():
            yield connection


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    with write_connection(engine) as connection, Session(bind=connection, expire_on_commit=False) as session:
        yield session
        session.flush()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with Session(bind=engine, expire_on_commit=False) as session, session.begin():
        yield session


def transient(error: Exception) -> bool:
    """A failure that a retry of the whole transaction can fix: a lock held too long, a race on a unique key."""
    if isinstance(error, exc.IntegrityError):
        return True
    if isinstance(error, exc.OperationalError):
        text = str(error.orig).lower()
        return any(word in text for word in ("locked", "busy", "deadlock", "serializ", "could not obtain lock"))
    return False


def retrying(action: Callable[[], T], url: str) -> T:
    """Run a transaction, again after a short random wait when it lost a race; a lasting failure raises."""
    for attempt in range(RETRIES):
        try:
            return action()
        except exc.DBAPIError as error:
            if attempt == RETRIES - 1 or not transient(error):
                raise database_error(error, url) from error
            time.sleep(random.uniform(0, min(0.02 * 2 ** attempt, 1.0)))
    raise AssertionError("unreachable")


def database_error(error: exc.SQLAlchemyError, url: str) -> RegistryError:
    detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return RegistryError(f"registry database {display_url(url)}: {detail}")


# --------------------------------------------------------------------------- migrations


def alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("berth.registry") / "migrations"))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def check_revision(revision: str | None, url: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        raise RegistrySchemaError(
            f"the registry database {display_url(url)} is at schema revision {revision!r}, which this berth does "
            "not know: a newer berth upgraded it; upgrade berth to use it") from None


def upgrade(engine: Engine, url: str, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to ``target`` under the migration lock; returns the revisions before and after."""
    from alembic import command

    def run() -> tuple[str | None, str | None]:
        with write_connection(engine) as connection:
            if not is_sqlite(engine):
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            before = current_revision(connection)
            check_revision(before, url)
            if before is None:
                ours = set(Base.metadata.tables) & set(sa.inspect(connection).get_table_names())
                if ours:
                    raise RegistrySchemaError(
                        f"the database {display_url(url)} holds berth's tables ({', '.join(sorted(ours))}) but no "
                        f"schema version ({VERSION_TABLE}): it was not made by berth's migrations; refusing to "
                        "change it")
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, target)
            return before, current_revision(connection)

    return retrying(run, url)


def ensure_current(engine: Engine, url: str) -> None:
    """Apply pending migrations on first use; a database newer than this berth is refused."""
    try:
        with engine.connect() as connection:
            revision = current_revision(connection)
    except exc.DBAPIError as error:
        raise database_error(error, url) from error
    if revision == head_revision():
        return
    check_revision(revision, url)
    upgrade(engine, url)
