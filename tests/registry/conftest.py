"""Registry fixtures: distinct small bundles, and a registry over two database x artifact store pairs.

Test modules using ``registry`` get the S3 and PostgreSQL fixtures from tests/conftest.py:
the PostgreSQL and S3 variants take the loopback servers from there (and skip, or fail under CI=true, without).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import berth
from berth.registry import Registry

MakeBundle = Callable[[int], Path]
ALL_BACKENDS = ["sqlite-file", "sqlite-s3", "postgres-file", "postgres-s3"]
# The database (dialect) and the artifact store are separate layers that never branch on each other, so two pairs
# run every branch of both: SQLite with files, PostgreSQL with S3. The cross pairs still run in
# test_integrity.py (eight racing processes on each of ALL_BACKENDS).
BACKENDS = ["sqlite-file", "postgres-s3"]


@pytest.fixture(scope="session")
def make_bundle(tmp_path_factory: pytest.TempPathFactory,
                iris_data: tuple[pd.DataFrame, pd.Series]) -> MakeBundle:
    """``make_bundle(i)``: a bundle of a logistic regression with C=i+1 (a distinct payload for each i), made
    once per session; tests must not change it (copy it first)."""
    X, y = iris_data
    cache = tmp_path_factory.mktemp("bundles")

    def make(index: int) -> Path:
        path = cache / f"bundle-{index}"
        if not path.exists():
            model = LogisticRegression(C=index + 1.0, max_iter=1000).fit(X, y)
            berth.save(model, path, sample=X.head(5), reference=X, name="iris",
                       metrics={"accuracy": round(model.score(X, y), 4)}, params={"C": index + 1.0},
                       tags={"origin": "test"}, description=f"C={index + 1}")
        return path

    return make


def backend_urls(request: pytest.FixtureRequest, tmp_path: Path, backend: str) -> tuple[str, str]:
    database, store = backend.split("-")
    url = f"sqlite:///{tmp_path / 'registry.db'}" if database == "sqlite" else request.getfixturevalue("postgres_url")
    artifacts = str(tmp_path / "artifacts") if store == "file" else request.getfixturevalue("s3").url("artifacts")
    return url, artifacts


@pytest.fixture(params=BACKENDS)
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    url, artifacts = backend_urls(request, tmp_path, request.param)
    with Registry(url, artifacts) as opened:
        yield opened


@pytest.fixture
def use_registry(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The registry, also named by the environment (for berth.load("models:/...") and the CLI)."""
    monkeypatch.setenv("BERTH_REGISTRY_URL", registry.url)
    monkeypatch.setenv("BERTH_ARTIFACTS_URL", registry.artifacts.root)
    return registry


def artifact_locations(registry: Registry) -> list[str]:
    """The bundle locations under the artifact store root (``NAME/LOCATION``), read fresh."""
    from berth import storage

    root = registry.artifacts.root
    if not registry.artifacts.remote:
        base = Path(root)
        return sorted(f"{m.name}/{loc.name}" for m in base.iterdir() if m.is_dir() for loc in m.iterdir()) \
            if base.exists() else []
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    fs, path = storage.filesystem(root)
    if not fs.exists(path):
        return []
    return sorted({"/".join(key.removeprefix(path + "/").split("/")[:2]) for key in fs.find(path)})
