"""Library and Python versions on load: patch fine, minor warns, major refuses unless allowed."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

import berth
from berth import environment
from berth.manifest import MANIFEST_NAME


def bundle_with_versions(tmp_path: Path, **changes: str) -> Path:
    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    path = tmp_path / "m"
    berth.save(model, path, sample=[[0.5]])
    manifest = json.loads((path / MANIFEST_NAME).read_text())
    for name, version in changes.items():
        if name == "python":
            manifest["python"] = version
        else:
            manifest["libraries"][name] = version
    (path / MANIFEST_NAME).write_text(json.dumps(manifest))
    return path


def shifted(version: str, part: int) -> str:
    numbers = [int(p) for p in version.split(".")[:3]]
    numbers[part] += 1
    return ".".join(map(str, numbers))


def test_patch_difference_is_silent(tmp_path: Path) -> None:
    path = bundle_with_versions(tmp_path, **{"scikit-learn": shifted(sklearn.__version__, 2)})
    assert berth.load(path).predict([[1.0]]).tolist() == [1]


def test_minor_difference_warns_naming_both_versions(tmp_path: Path) -> None:
    saved = shifted(sklearn.__version__, 1)
    path = bundle_with_versions(tmp_path, **{"scikit-learn": saved})
    with pytest.warns(berth.BerthWarning, match=f"scikit-learn {saved} was used .* {sklearn.__version__} is installed"):
        berth.load(path)


def test_python_minor_difference_warns(tmp_path: Path) -> None:
    path = bundle_with_versions(tmp_path, python=shifted(platform.python_version(), 1))
    with pytest.warns(berth.BerthWarning, match="Python"):
        berth.load(path)


def test_major_difference_refuses_unless_allowed(tmp_path: Path) -> None:
    saved = shifted(sklearn.__version__, 0)
    path = bundle_with_versions(tmp_path, **{"scikit-learn": saved})
    with pytest.raises(berth.EnvironmentMismatchError, match=f"scikit-learn {saved} .* {sklearn.__version__}"):
        berth.load(path)
    with pytest.warns(berth.BerthWarning):
        assert berth.load(path, allow_version_mismatch=True).predict([[1.0]]).tolist() == [1]


def test_missing_library_refuses(tmp_path: Path) -> None:
    path = bundle_with_versions(tmp_path, **{"not-a-real-dist": "1.0"})
    with pytest.raises(berth.EnvironmentMismatchError, match="not-a-real-dist 1.0 .* not installed"):
        berth.load(path)


def test_capture_skips_what_is_not_installed() -> None:
    assert environment.capture(["numpy", "not-a-real-dist"]).keys() == {"numpy"}
