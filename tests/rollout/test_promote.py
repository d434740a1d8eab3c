"""The promotion gate: its requirement grammar (never eval), and berth promote refusing a worse candidate,
passing a better one (moving the alias, auditing the evidence), and exit codes for scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import berth
from berth.cli import app
from berth.errors import UsageError
from berth.monitoring.gate import parse
from berth.monitoring.store import Store
from berth.registry import Registry
from tests.monitoring.test_compare import N, log_pair


@pytest.mark.parametrize(("text", "baseline", "threshold"), [
    ("accuracy >= baseline - 0.01", 0.9, 0.89),
    ("p99_ms <= 1.2 * baseline", 10.0, 12.0),
    ("mae < (baseline + 1) * 2", 1.5, 5.0),
    ("error_rate <= 0.01", None, 0.01),
    ("f1 >= -baseline + 1.5", 0.7, 0.8),
    ("accuracy>=baseline-1e-2", 0.9, 0.89),
])
def test_requirements_parse_and_evaluate(text: str, baseline: float | None, threshold: float) -> None:
    assert parse(text).threshold(baseline) == pytest.approx(threshold)


@pytest.mark.parametrize("text", ["accuracy", "speed >= 1", "accuracy => 1", "accuracy >= baseline /2",
                                  "accuracy >= __import__('os').system('true')", "accuracy >= (1 + 2",
                                  "accuracy >= 1 2", "accuracy >= baseline.real", "x" * 300])
def test_bad_requirements_are_refused(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


def promote(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    done = CliRunner().invoke(app, ["promote", "iris", *args, "--json"])
    return done.exit_code, json.loads(done.output) if done.output.startswith("{") else {"output": done.output}


def test_the_gate_refuses_a_worse_candidate_and_passes_a_better_one(iris_versions: Registry,
                                                                    tmp_path: Path) -> None:
    store = Store(tmp_path / "mon")
    loaded = berth.load("models:/iris/1")
    log_pair(store, loaded, base_ok=0.9, cand_ok=0.8, versions=("1", "2"), prefix="a")  # 2 is worse
    log_pair(store, loaded, base_ok=0.9, cand_ok=0.98, versions=("1", "3"), prefix="b", seed=1)  # 3 is better
    rules = ["--require", "accuracy >= baseline - 0.01", "--require", "p99_ms <= 3 * baseline",
             "--min-labels", "500", "--monitor-dir", str(store.root)]

    code, worse = promote("--candidate", "2", *rules)
    assert code == 3 and worse["verdict"] == "refused" and not worse["promoted"]
    assert [r["holds"] for r in worse["requirements"]] == [False, True]
    assert iris_versions.aliases("iris")["production"] == 1

    code, short = promote("--candidate", "3", *rules[:4], "--min-labels", str(10 * N), "--monitor-dir",
                          str(store.root))
    assert code == 4 and short["verdict"] == "insufficient" and "fewer than --min-labels" in short["insufficient"][0]

    code, dry = promote("--candidate", "3", *rules, "--dry-run")
    assert code == 0 and dry["verdict"] == "passed" and not dry["promoted"]
    assert iris_versions.aliases("iris")["production"] == 1

    iris_versions.set_rollout("iris", 3, shadow=1.0)
    code, better = promote("--candidate", "3", *rules)
    assert code == 0 and better["promoted"] and better["requirements"][0]["candidate"] > 0.95
    assert iris_versions.aliases("iris")["production"] == 3 and iris_versions.rollout("iris") is None
    event = iris_versions.audit("iris")[-1]
    assert event.action == "promote" and event.version == 3 and event.old_value == "1"
    assert json.loads(event.new_value or "{}")["requirements"][0]["requirement"] == "accuracy >= baseline - 0.01"
    done = CliRunner().invoke(app, ["rollback", "iris"])  # rollback stays one command
    assert done.exit_code == 0 and iris_versions.aliases("iris")["production"] == 1

    text = CliRunner().invoke(app, ["promote", "iris", "--candidate", "2", *rules])
    assert text.exit_code == 3 and "FAIL accuracy >= baseline - 0.01" in text.output
    bad = CliRunner().invoke(app, ["promote", "iris", "--candidate", "2", "--require", "accuracy >> 1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
