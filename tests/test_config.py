"""berth.config reads the environment when asked, with defaults under BERTH_HOME, and refuses bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth import config
from berth.errors import RegistryError, UsageError
from berth.monitoring.store import check_name as monitoring_name
from berth.names import check_model_name
from berth.registry.uri import check_name as registry_name


def test_defaults_live_under_berth_home(tmp_path: Path) -> None:
    env = {"BERTH_HOME": str(tmp_path)}
    assert config.home(env) == tmp_path
    assert config.registry_url(env) == f"sqlite:///{tmp_path / 'registry.db'}"
    assert config.artifacts_url(env) == str(tmp_path / "artifacts")
    assert config.monitor_dir(env) == str(tmp_path / "monitoring")
    assert config.home({"BERTH_HOME": " "}) == Path("~/.berth").expanduser()  # empty means the default
    assert config.s3_endpoint_url({}) is None and config.sklearn_matrix({}) is True


def test_explicit_values_win(tmp_path: Path) -> None:
    env = {"BERTH_HOME": str(tmp_path), "BERTH_REGISTRY_URL": "postgresql://db/berth",
           "BERTH_ARTIFACTS_URL": "s3://bucket/models", "BERTH_MONITOR_DIR": "~/logs",
           "BERTH_S3_ENDPOINT_URL": "http://127.0.0.1:9000", "BERTH_SKLEARN_MATRIX": "off"}
    assert config.registry_url(env) == "postgresql://db/berth"
    assert config.artifacts_url(env) == "s3://bucket/models"
    assert config.monitor_dir(env) == str(Path("~/logs").expanduser())
    assert config.s3_endpoint_url(env) == "http://127.0.0.1:9000"
    assert config.sklearn_matrix(env) is False


def test_read_when_called_not_at_import(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "a"))
    assert config.home() == tmp_path / "a"
    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "b"))
    assert config.home() == tmp_path / "b"


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("BERTH_SKLEARN_MATRIX", "maybe", "BERTH_SKLEARN_MATRIX='maybe' is not a boolean"),
    ("BERTH_REGISTRY_URL", "registry.db", "BERTH_REGISTRY_URL='registry.db' is not a URL"),
    ("BERTH_S3_ENDPOINT_URL", "localhost:9000", "BERTH_S3_ENDPOINT_URL='localhost:9000' is not a URL"),
])
def test_bad_values_fail_loudly_naming_the_variable(variable: str, value: str, message: str) -> None:
    reader = {"BERTH_SKLEARN_MATRIX": config.sklearn_matrix, "BERTH_REGISTRY_URL": config.registry_url,
              "BERTH_S3_ENDPOINT_URL": config.s3_endpoint_url}[variable]
    with pytest.raises(UsageError, match=message):
        reader({variable: value})


@pytest.mark.parametrize("name", ["iris", "Iris-2.v1", "0_model", "a" * 128])
def test_one_model_name_rule_accepts(name: str) -> None:
    assert check_model_name(name) == registry_name(name) == monitoring_name(name) == name


@pytest.mark.parametrize("name", ["", "-iris", ".hidden", "iris\n", "a/b", "my model", "a" * 129, "ïris"])
def test_one_model_name_rule_refuses_everywhere(name: str) -> None:
    with pytest.raises(UsageError, match="invalid model name"):
        check_model_name(name)
    with pytest.raises(UsageError, match="invalid model name"):
        monitoring_name(name)
    with pytest.raises(RegistryError, match="invalid model name"):
        registry_name(name)
