"""``berth serve`` of local sources that cannot be served exits non-zero with the reason (a real process), as it
does for a missing path; it does not keep running a server with no model."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import berth
from support.ports import free_port

BERTH = Path(sys.executable).parent / "berth"
ROOT = Path(__file__).resolve().parents[2]


class Echo:
    def predict(self, rows: object) -> object:
        return rows


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([str(BERTH), "serve", *args, "--host", "127.0.0.1", "--port", str(free_port())],
                          capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture
def pickle_bundle(tmp_path: Path) -> Path:
    berth.save(Echo(), tmp_path / "echo", sample=[[1.0]], flavor="python")
    return tmp_path / "echo"


@pytest.fixture
def corrupt_bundle(small_bundle: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "corrupt"
    shutil.copytree(small_bundle, copy)
    data = bytearray((copy / "model.skops").read_bytes())
    data[-10] ^= 0xFF
    (copy / "model.skops").write_bytes(bytes(data))
    return copy


def last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert lines, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return lines[-1]


def test_an_untrusted_pickle_bundle_exits_non_zero(pickle_bundle: Path) -> None:
    done = serve(str(pickle_bundle), "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert "cannot serve" in last_error(done) and "trust" in last_error(done)


def test_a_corrupt_bundle_exits_non_zero(corrupt_bundle: Path) -> None:
    done = serve(str(corrupt_bundle), "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert "sha256 does not match" in last_error(done)


def test_a_plain_pickle_file_without_trust_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": [1, 2]}))
    done = serve(str(path), "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert "runs code" in last_error(done)


def test_with_several_workers_the_supervisor_exits_non_zero(corrupt_bundle: Path) -> None:
    done = serve(str(corrupt_bundle), "--workers", "2")
    assert done.returncode == 1, done.stderr
    assert "sha256 does not match" in done.stderr  # the worker's reason, logged
    assert "cannot load what it was asked to serve" in last_error(done)


def test_one_bad_among_good_sources_still_exits(small_bundle: Path, corrupt_bundle: Path) -> None:
    done = serve(str(small_bundle), str(corrupt_bundle), "--workers", "1")
    assert done.returncode == 1, done.stderr
    assert str(corrupt_bundle) in last_error(done)


def test_a_trusted_pickle_bundle_still_serves(pickle_bundle: Path) -> None:
    """The control: the same bundle with --trust starts (and is stopped by the test)."""
    from support.server_process import ServerProcess

    server = ServerProcess(str(pickle_bundle), "--trust", "--workers", "1")
    try:
        server.wait_ready()
    finally:
        server.stop()
