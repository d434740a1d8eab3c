"""The registry commands: the console script for exit codes and clean errors, CliRunner for the rest.

The registry here is the default one under ``BERTH_HOME`` (SQLite + local files): the CLI's own defaults.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from berth.cli import app
from tests.registry.conftest import MakeBundle

BERTH = Path(sys.executable).parent / "berth"
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BERTH_REGISTRY_URL", raising=False)
    monkeypatch.delenv("BERTH_ARTIFACTS_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapping inside the words the tests look for
    return tmp_path / "home"


def berth(*args: str | Path) -> str:
    done = runner.invoke(app, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    return done.output


def as_json(*args: str | Path) -> object:
    return json.loads(berth(*args, "--json"))


def test_register_alias_rollback_show_list_diff_audit(home: Path, make_bundle: MakeBundle) -> None:
    out = berth("register", make_bundle(0), "--name", "iris", "--alias", "production", "--tag", "team=ml",
                "--description", "first")
    assert "registered iris version 1" in out and "alias production -> 1" in out
    assert (home / "registry.db").is_file() and (home / "artifacts" / "iris").is_dir()
    assert "iris version 1 already holds this bundle" in berth("register", make_bundle(0), "--name", "iris")
    registered = as_json("register", make_bundle(1), "--name", "iris")
    assert registered["version"] == 2 and registered["existing"] is False  # type: ignore[index]

    assert "iris@production -> version 2" in berth("alias", "set", "iris", "production", "2")
    assert as_json("rollback", "iris") == {"name": "iris", "alias": "production", "version": 1}
    listed = as_json("models", "list")
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [  # type: ignore[union-attr]
        ("iris", 2, {"production": 1})]
    shown = as_json("models", "show", "iris")
    assert [v["version"] for v in shown["versions"]] == [1, 2]  # type: ignore[index]
    assert shown["versions"][0]["tags"]["team"] == "ml"  # type: ignore[index]
    table = berth("models", "show", "iris")
    assert "production" in table and "first" in table
    diff = as_json("models", "diff", "iris", "1", "2")
    assert diff["sections"]["params"]["C"] == [1.0, 2.0]  # type: ignore[index]
    assert "params" in berth("models", "diff", "iris", "1", "2")
    assert "team=x" in berth("models", "tag", "iris", "1", "team=x")
    audit = as_json("audit", "iris")
    assert [e["action"] for e in audit] == ["register", "alias.set", "register", "alias.set",  # type: ignore[index]
                                            "alias.rollback", "tag.set"]
    assert "alias.rollback" in berth("audit", "iris")
    assert as_json("alias", "rm", "iris", "production") == {"name": "iris", "alias": "production",
                                                            "removed_from": 1}
    assert "deleted iris version 1" in berth("models", "delete", "iris", "--version", "1")
    assert as_json("models", "delete", "iris") == {"name": "iris", "deleted_versions": [2], "model_deleted": True}
    assert as_json("models", "list") == []


def test_model_uris_work_in_inspect_verify_and_predict(home: Path, make_bundle: MakeBundle, tmp_path: Path,
                                                       iris_data: tuple[pd.DataFrame, pd.Series]) -> None:
    berth("register", make_bundle(0), "--name", "iris", "--alias", "production")
    berth("register", make_bundle(1), "--name", "iris")
    assert "OK models:/iris@production" in berth("verify", "models:/iris@production")
    assert json.loads(berth("inspect", "models:/iris/latest", "--json"))["params"] == {"C": 2.0}
    rows = tmp_path / "rows.csv"
    iris_data[0].head(7).to_csv(rows, index=False)
    out = tmp_path / "out.csv"
    done = runner.invoke(app, ["predict", "models:/iris@production", "--input", str(rows), "--output", str(out)])
    assert done.exit_code == 0, done.output
    assert len(pd.read_csv(out)) == 7


def test_errors_print_cleanly_with_their_exit_code(home: Path, make_bundle: MakeBundle) -> None:
    env_home = str(home)

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        import os

        return subprocess.run([str(BERTH), *map(str, args)], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "BERTH_HOME": env_home})

    assert run("register", make_bundle(0), "--name", "iris", "--alias", "production").returncode == 0
    for args, message in [
        (["models", "show", "nope"], "no model named 'nope'"),
        (["alias", "set", "iris", "production", "7"], "no version 7 (versions: 1)"),
        (["alias", "set", "iris", "latest", "1"], "'latest' is reserved"),
        (["register", make_bundle(1), "--name", "bad/name"], "invalid model name"),
        (["models", "delete", "iris", "--version", "1"], "aliases point at what would be deleted"),
        (["rollback", "iris"], "no earlier version"),
        (["verify", "models:/iris/9"], "no version 9"),
        (["inspect", "models:/iris"], "names no version"),
        (["audit", "iris", "--registry", "mysql://x/y"], "unsupported registry database"),
    ]:
        done = run(*args)
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    usage = run("register", make_bundle(1), "--name", "iris", "--tag", "novalue")
    assert usage.returncode == 2 and "KEY=VALUE" in usage.stderr
    assert run("models", "tag", "iris", "1").returncode == 2
    assert "Traceback" not in run("models").stderr


def test_tables_are_tab_separated_when_piped(home: Path, make_bundle: MakeBundle,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "30")  # narrow: a terminal table would wrap; a pipe gets whole values
    berth("register", make_bundle(0), "--name", "a-model-with-a-rather-long-name", "--alias", "production")
    lines = berth("models", "list").splitlines()
    assert lines[:2] == ["# Registered models", "name\tlatest\tversions\taliases\tupdated"]
    assert lines[2].split("\t")[:4] == ["a-model-with-a-rather-long-name", "1", "1", "production -> 1"]
    audit = berth("audit", "a-model-with-a-rather-long-name").splitlines()
    assert audit[0] == "# Audit log of a-model-with-a-rather-long-name" and "\tregister\t" in audit[2]
