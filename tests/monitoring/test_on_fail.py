"""berth monitor check --on-fail: the command runs only when the check fails, with the model, version, what
failed and the window's inputs and labels as Parquet files in its environment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from berth.cli import app
from berth.model import LoadedModel
from berth.monitoring.store import Store
from tests.monitoring.test_compare import N, log_pair

DUMP = """
import json, os, sys
import pandas as pd
env = {k: v for k, v in os.environ.items() if k.startswith("BERTH_CHECK_")}
env["inputs"] = pd.read_parquet(env["BERTH_CHECK_INPUTS"]).columns.tolist()
env["input_rows"] = len(pd.read_parquet(env["BERTH_CHECK_INPUTS"]))
env["label_rows"] = len(pd.read_parquet(env["BERTH_CHECK_LABELS"]))
env["verdict"] = json.load(open(env["BERTH_CHECK_REPORT"]))
json.dump(env, open(sys.argv[1], "w"))
sys.exit(7)
"""


def test_on_fail_runs_with_the_window(store: Store, loaded: LoadedModel, tmp_path: Path) -> None:
    log_pair(store, loaded, base_ok=0.5, cand_ok=0.9)  # version 1 answers, badly; version 2 only shadows
    script, out = tmp_path / "dump.py", tmp_path / "env.json"
    script.write_text(DUMP)
    done = CliRunner().invoke(app, ["monitor", "check", "iris", "--monitor-dir", str(store.root), "--min", "0.8",
                                    "--on-fail", f"{sys.executable} {script} {out}"])
    assert done.exit_code == 1, done.output
    assert "ran --on-fail" in done.output and "exit status 7" in done.output
    env = json.loads(out.read_text())
    assert env["BERTH_CHECK_MODEL"] == "iris" and env["BERTH_CHECK_VERSION"] == "1"
    assert "accuracy" in env["BERTH_CHECK_FAILED"] and env["BERTH_CHECK_SINCE"] == "24h"
    assert env["input_rows"] == N and env["label_rows"] == N  # served rows only: no shadow rows
    assert {"request_id", "row", "version", "prediction", "sepal length (cm)"} <= set(env["inputs"])
    assert env["verdict"]["ok"] is False
    assert not Path(env["BERTH_CHECK_INPUTS"]).exists()  # removed once the command ended


def test_on_fail_does_not_run_when_the_check_passes_and_refuses_bad_commands(store: Store, loaded: LoadedModel,
                                                                            tmp_path: Path) -> None:
    log_pair(store, loaded, base_ok=0.99, cand_ok=0.9)
    marker = tmp_path / "ran"
    done = CliRunner().invoke(app, ["monitor", "check", "iris", "--monitor-dir", str(store.root), "--min", "0.5",
                                    "--on-fail", f"touch {marker}"])
    assert done.exit_code == 0 and not marker.exists(), done.output
    for bad in ("'unbalanced", "   "):
        refused = CliRunner().invoke(app, ["monitor", "check", "iris", "--monitor-dir", str(store.root),
                                           "--on-fail", bad])
        assert refused.exit_code == 2 and "--on-fail" in refused.output
    missing = CliRunner().invoke(app, ["monitor", "check", "iris", "--monitor-dir", str(store.root), "--min", "1.1",
                                       "--on-fail", "no-such-command-here"])
    assert missing.exit_code == 2 and "no such command" in missing.output
