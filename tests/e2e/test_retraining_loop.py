"""examples/retraining/run_loop.py end to end on a real server process: drifted traffic fails the check, the
--on-fail command retrains and sets a shadow, the gate promotes version 2, and the same server (never restarted)
answers with version 2."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_the_retraining_loop(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "examples/retraining/run_loop.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    assert result["before"] == {"1": 400}
    assert result["shadowed"] == {"1": 600}  # the shadow never answers
    assert result["after"] == {"2": 100}
    assert result["server_alive"]  # one server process throughout
    assert "ran --on-fail" in done.stdout and "exit status 0" in done.stdout
    assert "registered wine version 2" in done.stdout and "set it as production's shadow" in done.stdout
    assert "promoted: wine@production -> version 2" in done.stdout
    audit = subprocess.run([str(Path(sys.executable).parent / "berth"), "audit", "wine", "--json"],
                           capture_output=True, text=True, env={"BERTH_HOME": str(tmp_path / "home"),
                                                                "PATH": "/usr/bin:/bin"})
    actions = [event["action"] for event in __import__("json").loads(audit.stdout)]
    assert actions[-4:] == ["rollout.set", "rollout.clear", "alias.set", "promote"]
