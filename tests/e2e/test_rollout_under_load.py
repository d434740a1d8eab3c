"""Under a steady stream of concurrent requests, the alias moves five times (forward and back): zero failed
requests, every answer from a version the alias held, and every move followed within the poll interval plus
the version's load time (with slack for a busy 2-core machine; bench/rollout.py reports the real figures).
Both drive the scenario in support/rollout.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.rollout import run_scenario

pytestmark = pytest.mark.slow
SLACK_S = 5.0


def test_alias_moves_under_load_lose_nothing(tmp_path: Path) -> None:
    scenario = run_scenario(tmp_path / "home", workers=2, clients=6, poll_interval_s=0.5, moves=5)
    assert len(scenario.answers) > 500
    assert scenario.failed == []
    assert scenario.strays() == []
    assert [m.to for m in scenario.moves] == [2, 3, 1, 3, 2]
    for move in scenario.moves:
        assert move.load_s is not None
        assert move.follow_s is not None
        assert move.follow_s <= scenario.poll_interval_s + move.load_s + SLACK_S, move
    # every version the alias held answered some requests
    assert {a.version for a in scenario.answers} == {"1", "2", "3"}
