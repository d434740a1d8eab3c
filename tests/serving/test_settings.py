"""Settings: typed, from BERTH_* variables, failing loudly, and every one documented."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from berth.serving.settings import ServeSettings

DOC = Path(__file__).parents[2] / "docs" / "operations.md"  # the one table of every variable


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_PORT", "9001")
    monkeypatch.setenv("BERTH_API_KEYS", "a, b,")
    monkeypatch.setenv("BERTH_BATCHING", "false")
    settings = ServeSettings()
    assert (settings.port, settings.api_keys, settings.batching) == (9001, ["a", "b"], False)


def test_bad_values_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTH_MAX_BATCH_SIZE", "zero")
    with pytest.raises(ValidationError, match="max_batch_size"):
        ServeSettings()
    with pytest.raises(ValidationError, match="port"):
        ServeSettings(port=70000)


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    for name in ServeSettings.model_fields:
        assert f"| `BERTH_{name.upper()}` | `{name}` |" in text, name
