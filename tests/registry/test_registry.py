"""The registry's behaviour on every database x artifact store pair: sqlite|postgres x file|s3."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

import berth
from berth.errors import (
    BundleError,
    IntegrityError,
    RegistryConflictError,
    RegistryError,
    RegistryNotFoundError,
)
from berth.registry import Registry
from berth.serving.dataplane import load_source, version_of
from tests.registry.conftest import MakeBundle, artifact_locations


def test_versions_are_numbered_per_model_and_keep_their_lineage(registry: Registry, make_bundle: MakeBundle) -> None:
    first = registry.register(make_bundle(0), "iris", tags={"team": "ml"})
    second = registry.register(make_bundle(1), "iris", description="stronger regularisation")
    other = registry.register(make_bundle(2), "other")
    assert (first.version, second.version, other.version) == (1, 2, 1)
    assert not first.existing
    manifest = berth.inspect(make_bundle(0))
    assert first.digest == manifest.content_digest
    assert first.metrics == manifest.metrics and first.params == {"C": 1.0}
    assert first.tags == {"origin": "test", "team": "ml"}
    assert first.description == "C=1" and second.description == "stronger regularisation"
    assert first.data_fingerprint == manifest.reference["fingerprint"]  # type: ignore[index]
    assert first.git_commit == manifest.lineage["git"]["commit"]
    assert first.created_by and first.created_host
    assert first.created_at.tzinfo is not None
    assert registry.get_version("iris", 1) == first
    assert [v.version for v in registry.versions("iris")] == [1, 2]
    assert registry.artifacts.root in first.artifact_uri
    assert berth.verify(first.artifact_uri).content_digest == first.digest


def test_the_same_bundle_again_returns_the_existing_version(registry: Registry, make_bundle: MakeBundle) -> None:
    first = registry.register(make_bundle(0), "iris")
    stored = artifact_locations(registry)
    again = registry.register(make_bundle(0), "iris", aliases=["production"])
    assert again.existing and again.version == 1 and again.artifact_uri == first.artifact_uri
    assert artifact_locations(registry) == stored  # nothing copied
    assert registry.alias_version("iris", "production") == first
    assert registry.register(make_bundle(0), "copy").version == 1  # another name is another model


def test_uris_resolve_and_load_with_the_registry_version(use_registry: Registry, make_bundle: MakeBundle,
                                                         iris_data: tuple) -> None:
    registry = use_registry
    for index in range(3):
        registry.register(make_bundle(index), "iris")
    registry.set_alias("iris", "production", 2)
    assert registry.resolve("models:/iris/3").version == 3
    assert registry.resolve("models:/iris/latest").version == 3
    assert registry.resolve("models:/iris@production").version == 2

    model = berth.load("models:/iris@production")
    assert model.registry is not None
    assert (model.registry.name, model.registry.version, model.registry.alias) == ("iris", 2, "production")
    assert model.source == "models:/iris@production"
    assert model.predict(iris_data[0].head(3)).shape == (3,)
    assert version_of(model) == "2"
    served = load_source("models:/iris/latest", trust=False, registry=registry)
    assert version_of(served) == "3" and served.registry.alias is None  # type: ignore[union-attr]
    assert berth.inspect("models:/iris/1").content_digest == registry.get_version("iris", 1).digest
    assert berth.verify("models:/iris@production").content_digest == registry.get_version("iris", 2).digest


def test_an_explicit_registry_is_used_whatever_the_environment_names(
        registry: Registry, make_bundle: MakeBundle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # empty: knows no iris
    monkeypatch.setenv("BERTH_ARTIFACTS_URL", str(tmp_path / "elsewhere"))
    registered = registry.register(make_bundle(0), "iris", aliases=["production"])
    model = berth.load("models:/iris@production", registry=registry)
    assert model.registry is not None and model.registry.version == registered.version
    assert berth.inspect("models:/iris/1", registry=registry).content_digest == registered.digest
    assert berth.verify("models:/iris/1", registry=registry).content_digest == registered.digest
    with pytest.raises(RegistryNotFoundError):
        berth.load("models:/iris/1")  # the environment's registry has no model named iris


def test_a_models_uri_without_a_registry_below_the_entry_points_is_refused() -> None:
    from berth.errors import UsageError
    from berth.source import open_bundle

    with pytest.raises(UsageError, match="no registry was given"), open_bundle("models:/iris/1"):
        pass
    with pytest.raises(UsageError, match="no registry was given"):
        load_source("models:/iris/1", trust=False)


def test_a_stored_bundle_that_changed_is_refused(use_registry: Registry, make_bundle: MakeBundle) -> None:
    registry = use_registry
    first = registry.register(make_bundle(0), "iris")
    registry.register(make_bundle(1), "iris")
    # Replace version 1's stored bundle by version 2's: every file verifies, but it is not what was registered.
    from berth import storage

    fs, _ = storage.filesystem(first.artifact_uri) if registry.artifacts.remote else (None, None)
    replacement = berth.inspect(make_bundle(1))
    manifest_uri = storage.join(first.artifact_uri, "berth.json")
    source = make_bundle(1)
    for entry in replacement.files:  # the payload and the compiled twin: all of version 2's files
        payload_uri = storage.join(first.artifact_uri, entry.path)
        if fs is None:
            Path(payload_uri).write_bytes((source / entry.path).read_bytes())
        else:
            fs.pipe_file(storage.filesystem(payload_uri)[1], (source / entry.path).read_bytes())
    if fs is None:
        Path(manifest_uri).write_bytes((source / "berth.json").read_bytes())
    else:
        fs.pipe_file(storage.filesystem(manifest_uri)[1], (source / "berth.json").read_bytes())
    with pytest.raises(IntegrityError, match="was registered with digest"):
        berth.load("models:/iris/1")
    with pytest.raises(IntegrityError, match="was registered with digest"):
        berth.verify("models:/iris/1")


def test_aliases_move_roll_back_like_an_undo_stack_and_are_audited(registry: Registry,
                                                                   make_bundle: MakeBundle) -> None:
    for index in range(3):
        registry.register(make_bundle(index), "iris")
    assert registry.alias_version("iris", "production") is None
    registry.set_alias("iris", "production", 1)
    registry.set_alias("iris", "production", 2)
    registry.set_alias("iris", "production", 3)
    registry.set_alias("iris", "staging", 3)
    assert registry.aliases("iris") == {"production": 3, "staging": 3}
    assert registry.rollback("iris").version == 2
    assert registry.rollback("iris", "production").version == 1
    with pytest.raises(RegistryConflictError, match="no earlier version"):
        registry.rollback("iris")
    registry.set_alias("iris", "production", 3)
    assert registry.rollback("iris").version == 1  # back to what it held before the last move
    with pytest.raises(RegistryConflictError, match="staging holds version 3"):
        registry.rollback("iris", alias="staging")
    events = [(e.action, e.key, e.old_value, e.new_value) for e in registry.audit("iris")
              if e.key == "production"]
    assert events == [("alias.set", "production", None, "1"), ("alias.set", "production", "1", "2"),
                      ("alias.set", "production", "2", "3"), ("alias.rollback", "production", "3", "2"),
                      ("alias.rollback", "production", "2", "1"), ("alias.set", "production", "1", "3"),
                      ("alias.rollback", "production", "3", "1")]
    assert registry.remove_alias("iris", "production") == 1
    assert registry.alias_version("iris", "production") is None
    with pytest.raises(RegistryNotFoundError, match="no alias 'production'"):
        registry.resolve("models:/iris@production")


def test_a_rollback_skips_versions_deleted_since(registry: Registry, make_bundle: MakeBundle) -> None:
    for index in range(3):
        registry.register(make_bundle(index), "iris")
    for version in (1, 2, 3):
        registry.set_alias("iris", "production", version)
    registry.delete_version("iris", 2)
    assert registry.rollback("iris").version == 1


def test_tags_change_and_are_audited(registry: Registry, make_bundle: MakeBundle) -> None:
    registry.register(make_bundle(0), "iris", tags={"stage": "dev"})
    updated = registry.set_tags("iris", 1, {"stage": "prod", "owner": "ana"}, remove=["origin"])
    assert updated.tags == {"stage": "prod", "owner": "ana"}
    assert registry.get_version("iris", 1).tags == updated.tags
    changes = [(e.action, e.key, e.old_value, e.new_value) for e in registry.audit("iris") if "tag" in e.action]
    assert changes == [("tag.set", "stage", "dev", "prod"), ("tag.set", "owner", None, "ana"),
                       ("tag.rm", "origin", "test", None)]
    with pytest.raises(RegistryNotFoundError, match="no tag 'nope'"):
        registry.set_tags("iris", 1, remove=["nope"])


def test_delete_is_refused_under_an_alias_unless_forced_and_numbers_are_never_reused(
        registry: Registry, make_bundle: MakeBundle) -> None:
    for index in range(3):
        registry.register(make_bundle(index), "iris")
    registry.set_alias("iris", "production", 3)
    with pytest.raises(RegistryConflictError, match="production -> 3"):
        registry.delete_version("iris", 3)
    assert registry.get_version("iris", 3).version == 3
    deleted = registry.delete_version("iris", 3, force=True)
    assert registry.alias_version("iris", "production") is None
    assert not any(deleted.artifact_uri.endswith(location) for location in artifact_locations(registry))
    assert registry.register(make_bundle(3), "iris").version == 4
    with pytest.raises(RegistryNotFoundError, match=r"no version 3 \(versions: 1, 2, 4\)"):
        registry.get_version("iris", 3)
    actions = [e.action for e in registry.audit("iris")]
    assert actions[-3:] == ["alias.rm", "version.delete", "register"]

    registry.set_alias("iris", "staging", 1)
    with pytest.raises(RegistryConflictError):
        registry.delete_model("iris")
    assert registry.delete_model("iris", force=True) == [1, 2, 4]
    assert [m.name for m in registry.list_models()] == []
    assert artifact_locations(registry) == []
    assert registry.audit("iris")[-1].action == "model.delete"  # the log outlives the model
    assert registry.register(make_bundle(0), "iris").version == 1


def test_listing_showing_and_diffing(registry: Registry, make_bundle: MakeBundle) -> None:
    from berth.registry.diff import diff_versions

    registry.register(make_bundle(0), "iris")
    registry.register(make_bundle(1), "iris", aliases=["production"])
    registry.register(make_bundle(0), "wine")
    listed = {m.name: m for m in registry.list_models()}
    assert set(listed) == {"iris", "wine"}
    assert (listed["iris"].latest_version, listed["iris"].version_count, listed["iris"].aliases) == \
        (2, 2, {"production": 2})
    assert registry.get_model("wine").aliases == {}
    sections = diff_versions(registry, "iris", 1, 2)
    assert sections["params"]["C"] == [1.0, 2.0]
    assert sections["metrics"]["accuracy"][0] is not None
    assert sections["signature"]["input petal width (cm)"] == ["float64", "float64"]
    assert "scikit-learn" in sections["libraries"]
    assert sections["version"]["digest"][0] != sections["version"]["digest"][1]


@pytest.mark.parametrize("call", [
    lambda r: r.get_version("nope", 1), lambda r: r.versions("nope"), lambda r: r.resolve("models:/nope/latest"),
    lambda r: r.set_alias("nope", "production", 1), lambda r: r.audit("nope"), lambda r: r.rollback("nope"),
])
def test_unknown_models_are_named_in_the_error(registry: Registry, call: object) -> None:
    with pytest.raises(RegistryNotFoundError, match="no model named 'nope'"):
        call(registry)  # type: ignore[operator]


def test_bad_input_is_refused_and_leaves_nothing(registry: Registry, make_bundle: MakeBundle,
                                                 tmp_path: Path) -> None:
    bundle = make_bundle(0)
    with pytest.raises(RegistryError, match="invalid model name"):
        registry.register(bundle, "bad name")
    with pytest.raises(RegistryError, match="invalid alias"):
        registry.register(bundle, "iris", aliases=["7"])
    with pytest.raises(BundleError, match="does not exist"):
        registry.register(tmp_path / "missing", "iris")
    registry.register(bundle, "iris")
    with pytest.raises(RegistryNotFoundError, match=r"no version 9 \(versions: 1\)"):
        registry.set_alias("iris", "production", 9)
    tampered = tmp_path / "tampered"
    shutil.copytree(make_bundle(1), tampered)
    payload = tampered / berth.inspect(tampered).files[0].path
    payload.write_bytes(payload.read_bytes() + b"x")
    with pytest.raises(IntegrityError):
        registry.register(tampered, "iris")
    assert [v.version for v in registry.versions("iris")] == [1]
    assert len(artifact_locations(registry)) == 1
    assert registry.alias_version("iris", "production") is None


def test_a_packed_bundle_registers_like_its_directory(registry: Registry, make_bundle: MakeBundle,
                                                      tmp_path: Path) -> None:
    archive = tmp_path / "iris.berth"
    berth.pack(make_bundle(0), archive)
    packed = registry.register(archive, "iris")
    assert registry.register(make_bundle(0), "iris").existing
    assert packed.digest == berth.inspect(make_bundle(0)).content_digest


def test_one_registry_serves_many_threads(registry: Registry, make_bundle: MakeBundle) -> None:
    """A server polls alias_version from a background thread while others move the alias and register."""
    for index in range(2):
        registry.register(make_bundle(index), "iris")
    registry.set_alias("iris", "production", 1)
    make_bundle(2)
    seen: set[int] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        try:
            while not stop.is_set():
                found = registry.alias_version("iris", "production")
                assert found is not None
                seen.add(found.version)
        except BaseException as exc:
            errors.append(exc)

    pollers = [threading.Thread(target=poll) for _ in range(4)]
    for thread in pollers:
        thread.start()
    try:
        for version in (2, 1, 2, 1, 2):
            registry.set_alias("iris", "production", version)
        registry.register(make_bundle(2), "iris", aliases=["production"])
    finally:
        stop.set()
        for thread in pollers:
            thread.join()
    assert not errors
    assert seen and seen <= {1, 2, 3}
    final = registry.alias_version("iris", "production")
    assert final is not None and final.version == 3
