"""requirements.lock: every package of the image pinned with its hash, the same for two builds of one bundle."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from berth.deploy import lock
from berth.deploy.docker import build_context
from berth.errors import UsageError
from berth.manifest import read_manifest

pytestmark = pytest.mark.slow
HASHED = re.compile(r"^(?P<req>\S+)( \\\n    | )--hash=sha256:[0-9a-f]{64}$", re.MULTILINE)


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path, berth_wheel: Path) -> Path:
    return build_context(iris_bundle, tmp_path_factory.mktemp("lock") / "ctx", berth_wheel=str(berth_wheel)).directory


def requirements_of(text: str) -> list[str]:
    return [m.group("req") for m in HASHED.finditer(text)]


def test_every_package_is_pinned_with_a_hash(locked: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    text = (locked / "requirements.lock").read_text()
    body = [line for line in text.splitlines() if line and not line.startswith("#")]
    entries = requirements_of(text)
    assert len(entries) * 2 - 1 == len(body)  # each entry is a pin line plus its hash line (the wheel: one line)
    pins = dict(e.split("==") for e in entries if "==" in e)
    assert f"./wheels/{berth_wheel.name}" in entries
    for package in ("fastapi", "uvicorn", "pandas", "pyarrow", "pydantic", "starlette", "numpy", "scikit-learn"):
        assert package in pins, package  # berth's own dependencies no longer float
    manifest = read_manifest(iris_bundle)
    for name, version in manifest.libraries.items():
        if name != "berth":
            assert pins[name] == version, (name, pins.get(name), version)  # the model's libraries as saved


def test_two_builds_of_one_bundle_lock_the_same(locked: Path, iris_bundle: Path, tmp_path: Path) -> None:
    """Even berth's wheel, built again from the same source, has the same bytes (SOURCE_DATE_EPOCH)."""
    again = build_context(iris_bundle, tmp_path / "ctx").directory
    assert (again / "requirements.lock").read_text() == (locked / "requirements.lock").read_text()


def test_pip_refuses_a_wheel_that_does_not_match_the_lock(locked: Path, tmp_path: Path) -> None:
    text = (locked / "requirements.lock").read_text()
    wheel_line = next(line for line in text.splitlines() if line.startswith("./wheels/"))
    context = tmp_path / "ctx"
    (context / "wheels").mkdir(parents=True)
    wheel = next((locked / "wheels").iterdir())
    data = bytearray(wheel.read_bytes())
    data[-100] ^= 0xFF  # a byte of the zip's central directory: still a file, another hash
    (context / "wheels" / wheel.name).write_bytes(bytes(data))
    (context / "requirements.lock").write_text(wheel_line + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "--quiet",
                           "-d", str(tmp_path / "out"), "-r", "requirements.lock"], cwd=context,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "DO NOT MATCH THE HASHES" in done.stderr, done.stderr


def test_platforms() -> None:
    assert lock.platform_tags("linux/arm64")[0] == "manylinux_2_36_aarch64"
    assert "manylinux2014_x86_64" in lock.platform_tags("linux/amd64")
    with pytest.raises(UsageError, match="berth locks for linux/amd64, linux/arm64"):
        lock.platform_tags("windows/amd64")


def test_an_unresolvable_environment_is_one_clear_error(tmp_path: Path, iris_bundle: Path,
                                                        berth_wheel: Path) -> None:
    with pytest.raises(UsageError, match="cannot lock the serving environment .*pass --no-lock"):
        build_context(iris_bundle, tmp_path / "ctx", berth_wheel=str(berth_wheel),
                      extra_requirements=["berth-no-such-package-anywhere==99.0"])
    assert not (tmp_path / "ctx").exists()
