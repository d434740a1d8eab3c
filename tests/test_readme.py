"""The README runs: its Python blocks execute in order, and its command lines are real commands.

* Every ```python block runs, in order, in one namespace, in a scratch directory (``out/iris`` lands there). An
  expression followed by a comment that is a value (``loaded.predict(...)   # array([0])``) must produce it.
* Every ``berth ...`` line of every shell block names a real command with real options (``--help`` appended
  must succeed), and the lines that are safe offline run for real, in order, after the Python blocks, with a
  scratch ``BERTH_HOME``: inspect, verify, import, predict, pack, unpack, and the registry walk-through. Servers,
  the dashboard, network calls and container builds are only checked for their options.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from typer.testing import CliRunner

import berth
from berth.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
# command lines that are only checked for their options: they serve, open a UI, read logs that a server would
# have written, or build wheels and images
NOT_RUN = ("berth serve", "berth ui", "berth monitor", "berth build", "berth deploy",
           "berth predict models:/iris/3 --input data/")


def blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README.read_text()) if lang == language]


def command_lines() -> list[str]:
    """The ``berth`` lines of the shell blocks (untagged fences), comments removed."""
    lines = []
    for body in blocks(""):
        for line in body.splitlines():
            command = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
            if command.startswith("berth "):
                lines.append(command)
    return lines


def run_python(source: str, namespace: dict[str, Any]) -> None:
    """Run a block statement by statement; an expression with a value comment must equal that value."""
    tree = ast.parse(source)
    lines = source.splitlines()
    for statement in tree.body:
        end = statement.end_lineno or statement.lineno
        comment = lines[end - 1].partition("#")[2].strip() if "#" in lines[end - 1] else ""
        code = compile(ast.Module([statement], type_ignores=[]), str(README), "exec")
        if isinstance(statement, ast.Expr) and comment:
            value = eval(compile(ast.Expression(statement.value), str(README), "eval"), namespace)
            expected = expected_value(comment)
            if expected is not None:
                assert repr(value) == repr(expected), f"README line {end}: got {value!r}, it says {comment}"
        else:
            exec(code, namespace)


def expected_value(comment: str) -> Any | None:
    """The value a comment shows (``array([0])``, ``3``, ``'iris'``), or None for a comment in words."""
    try:
        return eval(comment, {"__builtins__": {}}, {"array": np.array})
    except Exception:
        return None


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "berth-home"))
    for name in ("BERTH_REGISTRY_URL", "BERTH_ARTIFACTS_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_the_readme_has_python_and_commands() -> None:
    assert len(blocks("python")) >= 1
    assert len(command_lines()) >= 20


@pytest.mark.parametrize("line", command_lines())
def test_every_command_line_names_real_commands_and_options(line: str) -> None:
    result = CliRunner().invoke(app, [*shlex.split(line)[1:], "--help"])
    assert result.exit_code == 0, f"{line}\n{result.output}"


def prepare_files(directory: Path, namespace: dict[str, Any]) -> None:
    """The files the command lines name that the README does not make: a joblib file and rows to score."""
    joblib.dump(namespace["model"], directory / "iris_model.joblib")
    namespace["X"].head(10).to_csv(directory / "rows.csv", index=False)


def second_version(directory: Path, namespace: dict[str, Any]) -> None:
    """``models diff iris 1 2`` and ``alias set iris production 2`` need a version 2: a retrained forest."""
    X, y = namespace["X"], namespace["y"]
    model = RandomForestClassifier(n_estimators=20, random_state=1).fit(X, y)
    berth.save(model, directory / "out" / "iris-2", sample=X.head(20), name="iris")
    result = CliRunner().invoke(app, ["register", str(directory / "out" / "iris-2"), "--name", "iris"])
    assert result.exit_code == 0, result.output


BEFORE: dict[str, Callable[[Path, dict[str, Any]], None]] = {"berth models diff iris 1 2": second_version}


@pytest.mark.slow
def test_the_python_blocks_and_the_offline_commands_run(scratch: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "readme"}
    for source in blocks("python"):
        run_python(source, namespace)
    assert (scratch / "out" / "iris" / "berth.json").is_file()
    prepare_files(scratch, namespace)
    ran = []
    for line in command_lines():
        if line.startswith(NOT_RUN):
            continue
        if line in BEFORE:
            BEFORE[line](scratch, namespace)
        result = CliRunner().invoke(app, shlex.split(line)[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
        ran.append(line)
    assert (scratch / "predictions.csv").is_file() and (scratch / "iris.berth").is_file()
    assert (scratch / "out" / "iris-copy" / "berth.json").is_file()
    assert any(line.startswith("berth rollback") for line in ran)
