"""Model URIs: the three forms, None for anything else, a clear error for a malformed one."""

from __future__ import annotations

import pytest

from berth.errors import RegistryError
from berth.registry.uri import ModelUri, parse_model_uri


@pytest.mark.parametrize(("text", "expected"), [
    ("models:/iris/3", ModelUri("iris", version=3)),
    ("models:/iris@production", ModelUri("iris", alias="production")),
    ("models:/iris/latest", ModelUri("iris", latest=True)),
    ("models:/fraud-model.v2/12", ModelUri("fraud-model.v2", version=12)),
    ("models:/iris@_canary-2", ModelUri("iris", alias="_canary-2")),
])
def test_the_three_forms_parse_and_print_back(text: str, expected: ModelUri) -> None:
    parsed = parse_model_uri(text)
    assert parsed == expected
    assert str(parsed) == text


@pytest.mark.parametrize("text", ["out/iris", "/abs/iris", "s3://bucket/iris", "iris.berth", "model:/iris/1",
                                  "file://models:/x"])
def test_anything_else_is_not_a_model_uri(text: str) -> None:
    assert parse_model_uri(text) is None


@pytest.mark.parametrize(("text", "message"), [
    ("models:/", "invalid model name"),
    ("models:/iris", "names no version"),
    ("models:/iris/", "names no version"),
    ("models:/iris/0", "number from 1"),
    ("models:/iris/-1", "number from 1"),
    ("models:/iris/three", "number from 1"),
    ("models:/iris/1/2", "number from 1"),
    ("models:/iris@", "invalid alias"),
    ("models:/iris@latest", "reserved"),
    ("models:/iris@3", "invalid alias"),
    ("models:/iris@a b", "invalid alias"),
    ("models:/ir is/1", "invalid model name"),
    ("models:/-iris/1", "invalid model name"),
    ("models:/" + "x" * 129 + "/1", "invalid model name"),
])
def test_malformed_model_uris_raise_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(RegistryError, match=message):
        parse_model_uri(text)
