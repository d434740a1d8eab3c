"""The options of `berth serve --backend ray` and the error without Ray: quick, no Ray instance started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import berth
from berth.cli import app
from berth.deploy.distributed_batch import ModelSpec, predict_dataset
from berth.ray_runtime import import_ray
from berth.serving.ray_serve import RayServeOptions, options_from_cli, parse_autoscale
from tests.serving.conftest import IRIS_X


def test_autoscale_bounds_are_parsed_and_checked() -> None:
    assert parse_autoscale("1:4") == (1, 4) and parse_autoscale(" 0 : 2 ") == (0, 2)
    for text in ("4", "1-4", "a:b", ""):
        with pytest.raises(berth.UsageError, match="MIN:MAX"):
            parse_autoscale(text)
    with pytest.raises(berth.UsageError, match="MIN <= MAX"):
        RayServeOptions(autoscale=(3, 1))
    with pytest.raises(berth.UsageError, match="at least 1"):
        RayServeOptions(replicas=0)


def test_options_of_the_other_backend_are_refused() -> None:
    assert options_from_cli("ray", 3, None, None, None) == RayServeOptions(replicas=3)
    assert options_from_cli("ray", None, "1:5", "ray://head:10001", None) == RayServeOptions(
        autoscale=(1, 5), address="ray://head:10001")
    with pytest.raises(berth.UsageError, match="go with --backend ray"):
        options_from_cli("local", 2, None, None, None)
    with pytest.raises(berth.UsageError, match="local or ray"):
        options_from_cli("k8s", None, None, None, None)
    with pytest.raises(berth.UsageError, match="--workers is for the local backend"):
        options_from_cli("ray", None, None, None, 2)
    with pytest.raises(berth.UsageError, match="not both"):
        options_from_cli("ray", 2, "1:3", None, None)


def test_the_command_refuses_replicas_without_the_ray_backend(iris_bundle: Path) -> None:
    result = CliRunner().invoke(app, ["serve", str(iris_bundle), "--replicas", "2"])
    assert result.exit_code == 2
    assert "--replicas, --autoscale and --address go with --backend ray" in result.output


def test_without_ray_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                       iris_bundle: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(berth.UsageError, match=r"pip install 'berth\[ray\]'"):
        import_ray()
    result = CliRunner().invoke(app, ["serve", str(iris_bundle), "--backend", "ray"])
    assert result.exit_code == 2 and "pip install 'berth[ray]'" in result.output
    rows = tmp_path / "rows.parquet"
    IRIS_X.to_parquet(rows)
    with pytest.raises(berth.UsageError, match=r"pip install 'berth\[ray\]'"):
        predict_dataset(ModelSpec(str(iris_bundle)), str(rows), str(tmp_path / "out"), engine="ray")
    assert not (tmp_path / "out").exists()


def test_replicas_get_the_prediction_log_place_resolved_by_the_driver(monkeypatch: pytest.MonkeyPatch,
                                                                        tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A replica may run with another environment (Ray workers, other nodes): the driver's BERTH_HOME decides."""
    from berth.serving.ray_serve import RayServeOptions, replica_settings
    from berth.serving.settings import ServeSettings

    monkeypatch.delenv("BERTH_MONITOR_DIR", raising=False)
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "home"))
    settings = replica_settings(ServeSettings(), RayServeOptions())
    assert settings.monitor_dir == str(tmp_path / "home" / "monitoring")
    explicit = replica_settings(ServeSettings(monitor_dir="s3://logs/berth"), RayServeOptions(address="ray://h:1"))
    assert explicit.monitor_dir == "s3://logs/berth"
    with caplog.at_level("WARNING", logger="berth.serve"):
        replica_settings(ServeSettings(), RayServeOptions(address="ray://head:10001"))
    assert "each node writes its own disk" in caplog.text
