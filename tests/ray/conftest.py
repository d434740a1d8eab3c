"""The Ray tests reuse the serving tests' bundles."""

from tests.serving.conftest import iris_bundle, iris_model  # noqa: F401
