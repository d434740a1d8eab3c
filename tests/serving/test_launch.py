"""`berth serve` and `berth.serve()` decide alike: settings, SageMaker's argument, paths, platform, backend."""

from __future__ import annotations

from pathlib import Path

import pytest

import berth
from berth.errors import UsageError
from berth.serving import launch as launch_module
from berth.serving.launch import Plan, RayRequest, plan
from berth.serving.ray_serve import RayServeOptions


def test_settings_given_and_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_MAX_BATCH_SIZE", "7")
    checked = plan([str(tmp_path)], {"port": 9100, "workers": None}, environ={})
    assert checked.sources == [str(tmp_path)]
    assert (checked.settings.port, checked.settings.max_batch_size, checked.ray) == (9100, 7, None)


def test_invalid_settings_are_usage_errors_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid server settings: port"):
        plan([str(tmp_path)], {"port": 70000}, environ={})
    with pytest.raises(UsageError, match="unknown server setting: prot"):
        plan([str(tmp_path)], {"prot": 1}, environ={})


def test_sagemaker_start_argument_and_platform_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(launch_module, "missing_paths", lambda sources: [])  # /opt/ml/model is not here
    checked = plan(["serve"], {}, environ={})
    assert checked.sources == ["/opt/ml/model"]
    assert (checked.settings.platform, checked.settings.port) == ("sagemaker", 8080)
    given_port = plan(["serve"], {"port": 9000}, environ={"SAGEMAKER_BIND_TO_PORT": "8081"})
    assert given_port.settings.port == 9000  # a port given explicitly wins over the platform's


def test_missing_local_paths_are_refused_before_anything_starts(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nothing to serve at .*missing"):
        plan([str(tmp_path / "missing"), "models:/iris@production", "s3://bucket/iris"], {}, environ={})
    with pytest.raises(UsageError, match="give at least one"):
        plan([], {}, environ={})


def test_backend_choice(tmp_path: Path) -> None:
    source = [str(tmp_path)]
    assert plan(source, {}, ray=RayRequest(), environ={}).ray is None
    ray = plan(source, {}, ray=RayRequest("ray", replicas=2), environ={})
    assert ray.ray == RayServeOptions(replicas=2)
    with pytest.raises(UsageError, match="--backend is local or ray"):
        plan(source, {}, ray=RayRequest("k8s"), environ={})
    with pytest.raises(UsageError, match="go with --backend ray"):
        plan(source, {}, ray=RayRequest(replicas=2), environ={})
    with pytest.raises(UsageError, match="--workers is for the local backend"):
        plan(source, {"workers": 2}, ray=RayRequest("ray"), environ={})


def test_berth_serve_decides_as_the_cli_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Plan] = []
    monkeypatch.setattr("berth.serving.server.run", lambda sources, settings: ran.append(Plan(sources, settings)))
    with pytest.raises(UsageError, match="invalid server settings: workers"):
        berth.serve(str(tmp_path), workers=0)
    with pytest.raises(UsageError, match="nothing to serve at"):
        berth.serve(tmp_path / "missing")
    berth.serve(tmp_path, port=9200, batching=False)
    assert ran[0].sources == [str(tmp_path)]
    assert (ran[0].settings.port, ran[0].settings.batching) == (9200, False)
