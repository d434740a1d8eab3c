"""A server started on models:/iris@production follows the alias in the background (in-process app)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import berth
from berth.registry import Registry
from berth.serving.rollout import check_compatible
from berth.signature import Signature
from tests.rollout.conftest import other_columns_bundle
from tests.serving.conftest import ROW, make_client

POLL_S = 0.05


def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(POLL_S)


def served_version(client) -> str:  # type: ignore[no-untyped-def]
    response = client.post("/predict", json={"features": ROW})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == response.headers["x-berth-model-version"]
    return response.headers["x-berth-model-version"]


def swaps(client, outcome: str) -> float:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("berth_model_swaps_total{") and f'outcome="{outcome}"' in line)


@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"], indirect=True)
def test_alias_moves_and_rollback_are_followed(iris_versions: Registry) -> None:
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S) as client:
        assert served_version(client) == "1"
        ready = client.get("/health/ready").json()["models"]["iris"]
        assert ready == {"ready": True, "version": "1", "follows": "models:/iris@production"}
        iris_versions.set_alias("iris", "production", 3)
        eventually(lambda: served_version(client) == "3")
        assert client.post("/predict", json={"features": ROW}).json()["model"] == "iris"
        iris_versions.rollback("iris", "production")
        eventually(lambda: served_version(client) == "1")
        assert swaps(client, "ok") == 2
        assert swaps(client, "failed") == 0


def test_a_corrupt_version_is_not_swapped_in(iris_versions: Registry) -> None:
    stored = Path(iris_versions.get_version("iris", 2).artifact_uri)
    payload = next(p for p in stored.iterdir() if p.name != "berth.json")
    payload.write_bytes(payload.read_bytes()[:-10] + b"corrupted!")
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S) as client:
        iris_versions.set_alias("iris", "production", 2)
        eventually(lambda: "problem" in client.get("/health/ready").json()["models"]["iris"])
        state = client.get("/health/ready")
        assert state.status_code == 200  # version 1 still serves: the server stays ready
        problem = state.json()["models"]["iris"]["problem"]
        assert "version 2" in problem and "still serving version 1" in problem
        assert "sha256" in problem or "digest" in problem
        assert served_version(client) == "1"
        assert swaps(client, "failed") == 1
        iris_versions.set_alias("iris", "production", 3)  # the next good version goes in
        eventually(lambda: served_version(client) == "3")
        assert "problem" not in client.get("/health/ready").json()["models"]["iris"]


def test_an_incompatible_signature_is_refused(iris_versions: Registry, tmp_path: Path) -> None:
    other = iris_versions.register(other_columns_bundle(tmp_path), "iris")
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S) as client:
        iris_versions.set_alias("iris", "production", other.version)
        eventually(lambda: "problem" in client.get("/health/ready").json()["models"]["iris"])
        problem = client.get("/health/ready").json()["models"]["iris"]["problem"]
        assert "input signature differs" in problem and "'petal length (cm)' removed" in problem
        assert served_version(client) == "1"


def test_an_incompatible_signature_goes_in_when_allowed(iris_versions: Registry, tmp_path: Path) -> None:
    other = iris_versions.register(other_columns_bundle(tmp_path), "iris")
    with make_client(["models:/iris@production"], poll_interval_s=POLL_S, allow_signature_change=True) as client:
        iris_versions.set_alias("iris", "production", other.version)

        def answers_with_new_columns() -> bool:
            response = client.post("/predict", json={"features": {"a": 5.1, "b": 3.5}})
            return response.status_code == 200 and response.headers["x-berth-model-version"] == str(other.version)

        eventually(answers_with_new_columns)


def test_a_fixed_version_does_not_follow(iris_versions: Registry) -> None:
    with make_client(["models:/iris/1"], poll_interval_s=POLL_S) as client:
        assert served_version(client) == "1"
        assert "follows" not in client.get("/health/ready").json()["models"]["iris"]
        iris_versions.set_alias("iris", "production", 3)
        time.sleep(20 * POLL_S)
        assert served_version(client) == "1"


def table(**column: object) -> Signature:
    spec = {"name": "x", "dtype": "int64", "nullable": False, **column}
    return Signature.from_dict({"layout": "table", "outputs": {"kind": "label", "dtype": "int64"},
                                "columns": [spec]})


@pytest.mark.parametrize(("old", "new", "problem"), [
    (table(), table(dtype="float64"), None),                  # integer to float widens
    (table(), table(nullable=True), None),
    (table(), table(dtype="string"), "changed from int64 to string"),
    (table(dtype="float64"), table(), "changed from float64 to int64"),
    (table(nullable=True), table(), "no longer accepts missing values"),
    (table(), table(name="y"), "column 'x' removed; column 'y' added"),
])
def test_compatibility_rules(old: Signature, new: Signature, problem: str | None) -> None:
    if problem is None:
        check_compatible(old, new)
    else:
        with pytest.raises(berth.errors.SignatureError, match=problem):
            check_compatible(old, new)


def test_a_registry_outage_keeps_the_version_and_says_so(iris_versions: Registry, registry_home: Path) -> None:
    import sqlite3

    def rename(old: str, new: str) -> None:  # the alias table vanishes, as in a broken or half-restored database
        with contextlib.closing(sqlite3.connect(registry_home / "registry.db")) as connection:
            connection.execute(f"ALTER TABLE {old} RENAME TO {new}")
            connection.commit()

    with make_client(["models:/iris@production"], poll_interval_s=POLL_S) as client:
        assert served_version(client) == "1"
        rename("berth_aliases", "berth_aliases_away")
        eventually(lambda: "cannot check" in client.get("/health/ready").json()["models"]["iris"].get("problem", ""))
        assert served_version(client) == "1"
        assert client.get("/health/ready").status_code == 200
        rename("berth_aliases_away", "berth_aliases")
        eventually(lambda: "problem" not in client.get("/health/ready").json()["models"]["iris"])
        iris_versions.set_alias("iris", "production", 2)
        eventually(lambda: served_version(client) == "2")
