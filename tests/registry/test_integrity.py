"""Integrity under concurrency and crashes, with real processes, on SQLite and PostgreSQL, file and S3 stores.

Each registration runs in its own process, forked from a fork server that has imported berth once
(``tests/registry/processes.py``).

* 8 processes registering 8 bundles of one model at once, on a database none of them has seen before (so they
  also race to migrate it): versions 1..8, each exactly once, no errors.
* 8 processes registering the same bundle: one version; the others are told it exists; one artifact left.
* A registration killed at each point (the worker injects the fault, ``tests/registry/worker.py``: the process
  ends with ``os._exit``, running no cleanup, as a SIGKILL would) leaves no visible version; the next
  registration removes its leftovers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from berth.registry import Registry
from berth.registry.database import head_revision
from tests.registry.conftest import ALL_BACKENDS, MakeBundle, artifact_locations, backend_urls
from tests.registry.processes import start_worker
from tests.registry.worker import CRASH_POINTS, FAULT_EXIT

WORKERS = 8


def run_together(url: str, artifacts: str, bundles: list[Path], go: Path) -> list[dict[str, object]]:
    workers = [start_worker(url, artifacts, bundle, "iris", scratch=go.parent / "workers", go=go)
               for bundle in bundles]
    go.touch()
    results = []
    for worker in workers:
        code, out, err = worker.finish()
        assert code == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_eight_processes_get_distinct_consecutive_versions(request: pytest.FixtureRequest, tmp_path: Path,
                                                           backend: str, make_bundle: MakeBundle) -> None:
    url, artifacts = backend_urls(request, tmp_path, backend)
    bundles = [make_bundle(index) for index in range(WORKERS)]
    results = run_together(url, artifacts, bundles, tmp_path / "go")
    assert sorted(r["version"] for r in results) == list(range(1, WORKERS + 1))
    assert not any(r["existing"] for r in results)
    with Registry(url, artifacts) as registry:
        assert registry.revision() == head_revision()
        versions = registry.versions("iris")
        assert [v.version for v in versions] == list(range(1, WORKERS + 1))
        assert len({v.digest for v in versions}) == WORKERS
        assert len(artifact_locations(registry)) == WORKERS
        assert [e.version for e in registry.audit("iris")] == list(range(1, WORKERS + 1))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"])
def test_eight_processes_registering_one_bundle_make_one_version(request: pytest.FixtureRequest, tmp_path: Path,
                                                                 backend: str, make_bundle: MakeBundle) -> None:
    url, artifacts = backend_urls(request, tmp_path, backend)
    results = run_together(url, artifacts, [make_bundle(0)] * WORKERS, tmp_path / "go")
    assert {r["version"] for r in results} == {1}
    assert sum(not r["existing"] for r in results) == 1
    with Registry(url, artifacts) as registry:
        assert [v.version for v in registry.versions("iris")] == [1]
        assert len(artifact_locations(registry)) == 1  # the surplus uploads were removed


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite-file", "postgres-s3"])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_killed_registration_leaves_no_version_and_is_cleaned_later(
        request: pytest.FixtureRequest, tmp_path: Path, backend: str, point: str, make_bundle: MakeBundle) -> None:
    url, artifacts = backend_urls(request, tmp_path, backend)
    with Registry(url, artifacts) as registry:
        registry.register(make_bundle(0), "iris")
        before = artifact_locations(registry)
        code, _, err = start_worker(url, artifacts, make_bundle(1), "iris", scratch=tmp_path / "workers",
                                    fault=point).finish()
        assert code == FAULT_EXIT, err
        assert [v.version for v in registry.versions("iris")] == [1]
        assert registry.resolve("models:/iris/latest").version == 1
        leftovers = set(artifact_locations(registry)) - set(before)
        if point != "pending":
            assert leftovers, "the killed registration should have uploaded something"
        assert [e.action for e in registry.audit("iris")] == ["register"]

        again = registry.register(make_bundle(1), "iris")  # cleans the dead process's upload first
        assert again.version == 2 and not again.existing
        assert len(artifact_locations(registry)) == 2
        assert not leftovers & set(artifact_locations(registry))


def test_an_upload_taken_for_an_orphan_is_not_committed(registry_sqlite: Registry, make_bundle: MakeBundle,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A registration slower than the grace period loses its upload to a cleaner and fails cleanly."""
    from berth.errors import RegistryConflictError

    registry = registry_sqlite
    original = registry.artifacts.verify

    def verify_then_be_cleaned(location: str, manifest: object) -> None:
        original(location, manifest)  # type: ignore[arg-type]
        assert registry.clean_orphans(older_than_s=0) == [location]

    monkeypatch.setattr(registry.artifacts, "verify", verify_then_be_cleaned)
    with pytest.raises(RegistryConflictError, match="taken for an orphan"):
        registry.register(make_bundle(0), "iris")
    assert registry.list_models() == []
    assert artifact_locations(registry) == []


@pytest.fixture
def registry_sqlite(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
