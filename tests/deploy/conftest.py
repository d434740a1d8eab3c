"""The deploy tests reuse the serving tests' bundle of the iris forest; berth's wheel is built once a session."""

from __future__ import annotations

from pathlib import Path

import pytest

from berth.deploy import requirements
from tests.serving.conftest import iris_bundle, iris_model  # noqa: F401


@pytest.fixture(scope="session")
def berth_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """berth's wheel, built from this checkout (the tests run from one: berth is installed from it)."""
    root = requirements.source_tree()
    assert root is not None, "berth is not installed from a source tree"
    return requirements.build_wheel(root, tmp_path_factory.mktemp("wheel"))
