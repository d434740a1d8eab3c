"""The registry is passed down from the entry points (create_app, ServeSettings.registry_url, berth serve
--registry); the environment's registry is only their default, and nothing below them reaches for it."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from berth.registry import Registry
from berth.serving import create_app
from berth.serving.settings import ServeSettings
from tests.registry.conftest import MakeBundle

with warnings.catch_warnings():  # starlette's TestClient warns about httpx when imported
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ROW = {"sepal length (cm)": 5.1, "sepal width (cm)": 3.5, "petal length (cm)": 1.4, "petal width (cm)": 0.2}


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The environment names an empty registry: only an explicit one knows the model."""
    monkeypatch.setenv("BERTH_REGISTRY_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")
    monkeypatch.setenv("BERTH_ARTIFACTS_URL", str(tmp_path / "elsewhere"))
    yield


@pytest.fixture
def own(tmp_path: Path, make_bundle: MakeBundle) -> Iterator[Registry]:
    with Registry(f"sqlite:///{tmp_path / 'own.db'}", tmp_path / "own") as registry:
        registry.register(make_bundle(0), "iris", aliases=["production"])
        registry.register(make_bundle(1), "iris")
        yield registry


def client(sources: list[Any], settings: ServeSettings | None = None, **kwargs: Any) -> TestClient:
    app = create_app(sources, settings or ServeSettings(log_predictions=False), load_in_background=False, **kwargs)
    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.usefixtures("elsewhere")
def test_create_app_serves_and_follows_the_registry_it_is_given(own: Registry) -> None:
    with client(["models:/iris@production"], registry=own) as served:
        ready = served.get("/health/ready").json()
        assert ready["ready"], ready
        assert ready["models"]["iris"]["version"] == "1"
        assert served.post("/predict", json={"instances": [ROW]}).status_code == 200
        plane = served.app.state.plane  # type: ignore[attr-defined]
        assert plane.registry is own and plane.registry_of("iris") is own
        own.set_alias("iris", "production", 2)
        follower = plane_follower(served)
        swapped = served.portal.call(follower.check, plane.slots["iris"])  # type: ignore[union-attr]
        assert swapped and served.get("/health/ready").json()["models"]["iris"]["version"] == "2"


def plane_follower(served: TestClient) -> Any:
    from berth.serving.rollout import AliasFollower

    plane = served.app.state.plane  # type: ignore[attr-defined]
    return AliasFollower(plane, interval_s=3600)


@pytest.mark.usefixtures("elsewhere")
def test_the_settings_registry_url_names_the_registry(own: Registry) -> None:
    settings = ServeSettings(log_predictions=False, registry_url=own.url)
    with client(["models:/iris/2"], settings) as served:
        ready = served.get("/health/ready").json()
        assert ready["ready"] and ready["models"]["iris"]["version"] == "2", ready


@pytest.mark.usefixtures("elsewhere")
def test_a_source_may_bring_its_own_registry(own: Registry) -> None:
    from berth.serving.dataplane import ModelSource

    with client([ModelSource(uri="models:/iris@production", registry=own)]) as served:
        ready = served.get("/health/ready").json()
        assert ready["ready"] and ready["models"]["iris"]["version"] == "1", ready
        plane = served.app.state.plane  # type: ignore[attr-defined]
        assert plane.registry is None and plane.registry_of("iris") is own  # no default registry was opened


def test_the_registry_url_setting_reads_the_registry_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_REGISTRY_URL", "sqlite:////tmp/team.db")
    assert ServeSettings().registry_url == "sqlite:////tmp/team.db"


@pytest.mark.usefixtures("elsewhere")
def test_without_a_registry_the_environment_one_is_used_and_reports_the_missing_model(own: Registry) -> None:
    with client(["models:/iris/1"]) as served:
        ready = served.get("/health/ready").json()
        assert not ready["ready"] and "iris" in next(iter(ready["problems"].values())), ready


def test_serving_bundles_opens_no_registry(iris_forest_bundle: Path) -> None:
    with client([iris_forest_bundle]) as served:
        assert served.app.state.plane.registry is None  # type: ignore[attr-defined]


def test_berth_serve_passes_registry_on_as_the_registry_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from berth.cli import app
    from berth.serving import launch

    seen: dict[str, Any] = {}
    monkeypatch.setattr(launch, "launch", lambda sources, given, **kwargs: seen.update(given))
    result = CliRunner().invoke(app, ["serve", "models:/iris/1", "--registry", "sqlite:////tmp/team.db"])
    assert result.exit_code == 0, result.output
    assert seen["registry_url"] == "sqlite:////tmp/team.db"
    assert launch.plan(["models:/iris/1"], seen).settings.registry_url == "sqlite:////tmp/team.db"


def test_only_the_entry_points_reach_for_the_default_registry() -> None:
    """Below berth.source.registry_for (called by berth.load/inspect/verify, create_app, build_context and the
    Ray replica), modules are passed a registry."""
    root = Path(__file__).parents[2] / "src" / "berth"
    callers = sorted(str(path.relative_to(root)) for path in root.rglob("*.py")
                     if "default_registry(" in path.read_text())
    assert callers == ["registry/store.py", "source.py"], callers
