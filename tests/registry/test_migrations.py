"""Alembic migrations: applied on first use and by ``berth registry upgrade``; an old database is upgraded in
place with its rows, never recreated; a database this berth does not understand is refused untouched."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from berth.errors import RegistrySchemaError
from berth.registry import Registry
from berth.registry.database import alembic_config, create_engine, head_revision
from tests.registry.conftest import MakeBundle

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = ROOT / "src/berth/registry/migrations"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("postgres_url")  # type: ignore[no-any-return]


def migrate_to(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def execute(url: str, statement: str, **values: object) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    with engine.begin() as connection:
        result = connection.execute(sa.text(statement), values)
        rows = [tuple(row) for row in result] if result.returns_rows else []
    engine.dispose()
    return rows


def test_a_fresh_database_is_migrated_on_first_use(database_url: str, tmp_path: Path) -> None:
    registry = Registry(database_url, tmp_path / "artifacts")
    assert registry.revision() is None
    assert registry.list_models() == []
    assert registry.revision() == head_revision() == "0002"
    assert registry.upgrade() == ("0002", "0002")


def test_a_database_at_the_first_revision_is_upgraded_with_its_rows(database_url: str, tmp_path: Path,
                                                                    make_bundle: MakeBundle) -> None:
    migrate_to(database_url, "0001")
    manifest_digest = "sha256:" + "ab" * 32
    execute(database_url, "INSERT INTO berth_models (id, name, description, last_version, created_at, updated_at) "
            "VALUES (1, 'iris', 'old', 3, :at, :at)", at="2024-05-01 10:00:00+00:00")
    for version in (1, 3):  # version 2 was deleted before the upgrade
        execute(database_url, "INSERT INTO berth_versions (model_id, version, digest, artifact_uri, flavor, format, "
                "size, description, metrics, params, tags, manifest, created_by, created_host, created_at) VALUES "
                "(1, :v, :d, :uri, 'sklearn', 'skops', 10, '', '{}', '{}', '{}', '{}', 'ana', 'box', :at)",
                v=version, d=manifest_digest.replace("ab", f"{version:02d}", 1), uri=f"/old/iris/{version}",
                at=f"2024-05-0{version} 10:00:00+00:00")
    execute(database_url, "INSERT INTO berth_aliases (model_id, alias, version_id, updated_at) "
            "SELECT 1, 'production', id, :at FROM berth_versions WHERE version = 3", at="2024-05-04 10:00:00+00:00")

    registry = Registry(database_url, tmp_path / "artifacts", auto_upgrade=False)
    assert registry.revision() == "0001"
    with pytest.raises(RegistrySchemaError, match="berth registry upgrade"):
        registry.list_models()
    assert registry.upgrade() == ("0001", "0002")

    assert [v.version for v in registry.versions("iris")] == [1, 3]
    assert registry.alias_version("iris", "production").version == 3  # type: ignore[union-attr]
    assert registry.get_model("iris").description == "old"
    backfilled = registry.audit("iris")
    assert [(e.action, e.version, e.user) for e in backfilled] == [("register", 1, "ana"), ("register", 3, "ana")]
    assert registry.register(make_bundle(0), "iris").version == 4  # numbering continues, 2 is never reused
    assert registry.audit("iris")[-1].action == "register"


def test_the_cli_upgrades_an_old_database(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from berth.cli import app

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate_to(url, "0001")
    done = CliRunner().invoke(app, ["registry", "upgrade", "--registry", url, "--json"])
    assert done.exit_code == 0, done.output
    assert '"from": "0001"' in done.output and '"to": "0002"' in done.output
    again = CliRunner().invoke(app, ["registry", "upgrade", "--registry", url])
    assert "is at the current schema (0002)" in again.output


def test_a_database_from_a_newer_berth_is_refused_untouched(database_url: str, tmp_path: Path) -> None:
    Registry(database_url, tmp_path / "a").list_models()
    execute(database_url, "UPDATE berth_alembic_version SET version_num = '0099'")
    with pytest.raises(RegistrySchemaError, match="'0099'.*upgrade berth"):
        Registry(database_url, tmp_path / "a").list_models()
    assert execute(database_url, "SELECT version_num FROM berth_alembic_version") == [("0099",)]


def test_berth_tables_without_a_schema_version_are_refused(database_url: str, tmp_path: Path) -> None:
    execute(database_url, "CREATE TABLE berth_models (id INTEGER PRIMARY KEY, name TEXT)")
    execute(database_url, "INSERT INTO berth_models VALUES (1, 'precious')")
    with pytest.raises(RegistrySchemaError, match="not made by berth's migrations"):
        Registry(database_url, tmp_path / "a").list_models()
    assert execute(database_url, "SELECT name FROM berth_models") == [("precious",)]


def test_other_applications_tables_are_left_alone(database_url: str, tmp_path: Path) -> None:
    execute(database_url, "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    execute(database_url, "INSERT INTO alembic_version VALUES ('someone-elses')")
    Registry(database_url, tmp_path / "a").list_models()
    assert execute(database_url, "SELECT version_num FROM alembic_version") == [("someone-elses",)]


def test_the_migration_scripts_ship_in_the_package() -> None:
    """Every file of the migrations directory is matched by the package-data globs in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["berth.registry"]
    package = ROOT / "src/berth/registry"
    files = [p for p in MIGRATIONS.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert {p.name for p in files} >= {"env.py", "script.py.mako", "0001_models_versions_aliases.py",
                                       "0002_audit_and_pending_artifacts.py"}
    for file in files:
        assert any(file.relative_to(package).match(pattern) for pattern in patterns), file
