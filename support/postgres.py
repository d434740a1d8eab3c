"""A throwaway PostgreSQL server: Debian's binaries, a temporary data directory, loopback, a free port.

``running_postgres()`` starts one (``initdb`` + ``pg_ctl``) and removes it afterwards; ``missing_reason()`` says
why it cannot (no binaries, no psycopg, root without a ``postgres`` user). PostgreSQL refuses to run as root, so
under root it runs as the ``postgres`` user (``runuser``), with the temporary directory owned by that user. The
test fixtures are in ``tests/postgres_fixture.py``; the registry benchmark uses this directly.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.ports import free_port

BIN_ENV = "BERTH_POSTGRES_BIN"  # a directory holding initdb and pg_ctl, to override the search
SYSTEM_USER = "postgres"


def find_bin() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: $BERTH_POSTGRES_BIN, Debian's newest, or the PATH."""
    candidates = [os.environ.get(BIN_ENV, "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    found = shutil.which("initdb")
    candidates.append(str(Path(found).parent) if found else "")
    for candidate in filter(None, candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    return None


def missing_reason() -> str | None:
    if find_bin() is None:
        return ("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH; "
                "install it with scripts/system-packages)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[postgres]')"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root needs runuser to start PostgreSQL as the postgres user"
        try:
            import pwd

            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return "running as root needs a 'postgres' system user to start PostgreSQL"
    return None


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"berth_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname="postgres",
                             autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start in a temporary directory on 127.0.0.1 and a free port; stopped and removed after."""
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    bin_dir = find_bin()
    assert bin_dir is not None
    scratch = Path(tempfile.mkdtemp(prefix="berth-pg-"))
    data, log = scratch / "data", scratch / "server.log"
    if os.geteuid() == 0:
        shutil.chown(scratch, SYSTEM_USER, SYSTEM_USER)
    port = free_port()
    started = False
    try:
        run(as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--no-sync"]), log)
        # fsync off: a crash of the test machine may lose the test database, which is fine and much faster.
        options = f"-h 127.0.0.1 -p {port} -k {scratch} -c fsync=off -c max_connections=200"
        run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
                            "-t", "60", "start"]), log)
        started = True
        yield PostgresServer("127.0.0.1", port, "postgres")
    finally:
        if started:
            subprocess.run(as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                           "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)


def run(command: list[str], log: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                           f"{server_log}")
