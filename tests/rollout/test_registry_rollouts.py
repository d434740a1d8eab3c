"""Rollouts as registry state: set/show/clear (audited, on SQLite and PostgreSQL), and servers following
models:/iris@production applying them on the poll that follows the alias (in-process app)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth.cli import app
from berth.errors import RegistryConflictError, RegistryError, RegistryNotFoundError
from berth.registry import Registry
from tests.rollout.conftest import other_columns_bundle
from tests.rollout.test_follow_alias import POLL_S, eventually, served_version
from tests.serving.conftest import ROW, make_client


@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"], indirect=True)
def test_rollouts_are_set_changed_cleared_and_audited(iris_versions: Registry) -> None:
    registry = iris_versions
    assert registry.rollout("iris") is None and registry.rollouts("iris") == []
    first = registry.set_rollout("iris", 3, canary=10)
    assert (first.candidate, first.canary_percent, first.shadow_share, first.alias) == (3, 10.0, 0.0, "production")
    changed = registry.set_rollout("iris", 2, shadow=0.5)
    assert registry.rollout("iris") == changed and changed.candidate == 2
    version, rollout = registry.follow_state("iris", "production")
    assert version is not None and version.version == 1 and rollout == changed
    with pytest.raises(RegistryConflictError, match="already is version 1"):
        registry.set_rollout("iris", 1, canary=5)
    for bad in ({"canary": 101}, {"shadow": 2}, {}, {"canary": float("nan")}):
        with pytest.raises(RegistryError):
            registry.set_rollout("iris", 3, **bad)  # type: ignore[arg-type]
    with pytest.raises(RegistryNotFoundError):
        registry.set_rollout("iris", 3, alias="staging", canary=5)
    with pytest.raises(RegistryConflictError, match="clear it first"):
        registry.delete_version("iris", 2)
    assert registry.clear_rollout("iris").candidate == 2
    with pytest.raises(RegistryNotFoundError):
        registry.clear_rollout("iris")
    events = [(e.action, e.version, e.key, e.old_value, e.new_value) for e in registry.audit("iris")
              if e.action.startswith("rollout")]
    assert events == [("rollout.set", 3, "production", None, "version 3: canary 10%"),
                      ("rollout.set", 2, "production", "version 3: canary 10%", "version 2: shadow 0.5"),
                      ("rollout.clear", 2, "production", "version 2: shadow 0.5", None)]
    # promotion moves the alias and ends the rollout in one transaction; rollback stays one command
    registry.set_rollout("iris", 3, canary=50)
    registry.promote("iris", 3, evidence='{"ok": true}')
    assert registry.aliases("iris")["production"] == 3 and registry.rollout("iris") is None
    assert [e.action for e in registry.audit("iris")][-3:] == ["rollout.clear", "alias.set", "promote"]
    assert registry.rollback("iris").version == 1


def test_the_rollout_commands(iris_versions: Registry) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["rollout", "set", "iris", "--candidate", "3", "--canary", "10"])
    assert done.exit_code == 0, done.output
    assert "iris@production (version 1) + version 3: canary 10%" in done.output
    shown = runner.invoke(app, ["rollout", "show", "iris", "--json"])
    assert json.loads(shown.output)[0] | {"updated_at": None} == {
        "name": "iris", "alias": "production", "candidate": 3, "canary_percent": 10.0, "shadow_share": 0.0,
        "updated_at": None, "baseline": 1}
    done = runner.invoke(app, ["rollout", "set", "iris", "--candidate", "2", "--shadow", "--share", "0.25"])
    assert done.exit_code == 0 and "version 2: shadow 0.25" in done.output
    for bad in (["--candidate", "2"], ["--candidate", "2", "--share", "0.5"], ["--candidate", "2", "--canary", "200"],
                ["--candidate", "9", "--canary", "5"]):
        failed = runner.invoke(app, ["rollout", "set", "iris", *bad])
        assert failed.exit_code != 0 and "Traceback" not in failed.output, failed.output
        assert "error" in failed.output or "Usage" in failed.output
    assert runner.invoke(app, ["rollout", "clear", "iris"]).exit_code == 0
    assert "no rollout" in runner.invoke(app, ["rollout", "show", "iris"]).output


def versions_answering(client, n: int = 200, key: str | None = None) -> Counter[str]:  # type: ignore[no-untyped-def]
    headers = {"x-berth-route-key": key} if key else {}
    return Counter(client.post("/predict", json={"features": ROW}, headers=headers)
                   .headers["x-berth-model-version"] for _ in range(n))


@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"], indirect=True)
def test_a_following_server_applies_rollouts_on_its_poll(iris_versions: Registry) -> None:
    registry = iris_versions
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S, log_predictions=False) as client:
        assert served_version(client) == "1"
        registry.set_rollout("iris", 3, canary=100)
        eventually(lambda: served_version(client) == "3")
        state = client.get("/health/ready").json()["models"]["iris"]
        assert state["canary"] == {"version": "3", "percent": 100.0, "source": "registry"}
        slot = client.app.state.plane.slots["iris"]
        candidate = slot.canary.runner
        registry.set_rollout("iris", 3, canary=30, shadow=1.0)  # a weight change: no reload
        eventually(lambda: slot.canary is not None and slot.canary.share == 30)
        assert slot.canary.runner is candidate and slot.shadow.runner is candidate
        seen = versions_answering(client)
        assert set(seen) == {"1", "3"}
        registry.set_rollout("iris", 2, shadow=0.5)  # another candidate
        eventually(lambda: slot.shadow is not None and slot.shadow.runner.version == "2")
        assert slot.canary is None and versions_answering(client, 50) == {"1": 50}
        registry.clear_rollout("iris")
        eventually(lambda: not slot.candidates())
        assert "shadow" not in client.get("/health/ready").json()["models"]["iris"]
        # promotion: the alias moves to the candidate, whose runner is reused
        registry.set_rollout("iris", 3, canary=10)
        eventually(lambda: slot.canary is not None)
        loaded = slot.canary.runner
        registry.promote("iris", 3)
        eventually(lambda: slot.runner.version == "3")  # (a canary answer says "3" before the promotion too)
        assert slot.runner is loaded and not slot.candidates()
        assert versions_answering(client, 30) == {"3": 30}


def test_a_candidate_that_cannot_be_served_is_refused_and_reported(iris_versions: Registry,
                                                                  tmp_path: Path) -> None:
    other = iris_versions.register(other_columns_bundle(tmp_path), "iris")
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S, log_predictions=False) as client:
        iris_versions.set_rollout("iris", other.version, canary=50)
        eventually(lambda: "problem" in client.get("/health/ready").json()["models"]["iris"])
        state = client.get("/health/ready")
        assert state.status_code == 200
        problem = state.json()["models"]["iris"]["problem"]
        assert f"candidate version {other.version} cannot be served" in problem
        assert "input signature differs" in problem and "serving version 1 alone" in problem
        assert versions_answering(client, 40) == {"1": 40}
        iris_versions.set_rollout("iris", 3, canary=100)  # a good candidate goes in
        eventually(lambda: served_version(client) == "3")
        assert "problem" not in client.get("/health/ready").json()["models"]["iris"]


@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"], indirect=True)
def test_a_promotion_between_the_polls_two_reads_is_not_torn(iris_versions: Registry) -> None:
    """follow_state reads the alias, then the rollout. A promotion committed between the two must not read as
    'alias unmoved, rollout gone' (PostgreSQL's default READ COMMITTED gives each statement its own snapshot):
    a follower would drop the candidate it is about to promote. The poll sees one state, before or after."""
    import sqlalchemy as sa

    registry = iris_versions
    registry.set_rollout("iris", 3, canary=10)
    other = Registry(registry.url)  # another process's promotion, on its own connection
    fired: list[bool] = []

    def promote_once(*_args: object) -> None:
        if not fired:
            fired.append(True)
            other.promote("iris", 3)

    sa.event.listen(registry._poll_engine, "after_execute", promote_once)
    try:
        target, rollout = registry.follow_state("iris", "production")
    finally:
        sa.event.remove(registry._poll_engine, "after_execute", promote_once)
        other.close()
    assert fired
    assert (target.version, rollout is not None) in {(1, True), (3, False)}, (target.version, rollout)
    target, rollout = registry.follow_state("iris", "production")
    assert target.version == 3 and rollout is None
