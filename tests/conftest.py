"""Shared fixtures: the iris data, a small forest trained on it, a fresh bundle of it per test, and one local Ray
instance and one Dask cluster per session for the tests that need them (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth
from tests.deploy.ray_support import require_ray

# The loopback S3 server and the PostgreSQL server, registered once here (each starts only when a test asks for
# its fixture): registered from single test modules, a subset run could import one before it is a plugin.
pytest_plugins = ["tests.s3_fixture", "tests.postgres_fixture"]


@pytest.fixture(scope="session", autouse=True)
def monitor_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Servers started by tests log predictions under a temporary directory, never under ~/.berth."""
    path = tmp_path_factory.mktemp("monitoring")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BERTH_MONITOR_DIR", str(path))
        yield path


@pytest.fixture(scope="session")
def iris_data() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    return X, y


@pytest.fixture(scope="session")
def iris_forest(iris_data: tuple[pd.DataFrame, pd.Series]) -> RandomForestClassifier:
    X, y = iris_data
    return RandomForestClassifier(n_estimators=10, random_state=0).fit(X, y)


@pytest.fixture
def iris_forest_bundle(tmp_path: Path, iris_forest: RandomForestClassifier,
                       iris_data: tuple[pd.DataFrame, pd.Series]) -> Path:
    """A skops bundle of the iris forest with a sample and reference statistics, in a fresh directory."""
    X, _ = iris_data
    path = tmp_path / "iris"
    berth.save(iris_forest, path, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               tags={"team": "ml"})
    return path


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray instance (2 CPUs) for the whole session, started on first use: code that runs Ray while
    it is up uses it (``berth.deploy.ray_runtime.ray_instance``) instead of starting its own."""
    require_ray("ray.data")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield None
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def dask_address() -> Iterator[str]:
    """One local Dask cluster of two worker processes for the session, reached by address as a remote one is."""
    require_ray()  # the extras are installed together; Dask's own check follows
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        yield cluster.scheduler_address
