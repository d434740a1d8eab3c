"""The recipe, proven without a Docker engine: the environment the Dockerfile describes, built and run.

No Docker engine runs on this project's machines, so the test plays the Dockerfile itself, instruction by
instruction, in a directory standing for the image's root filesystem:

- the build stage: ``COPY`` puts the context's files at the stage's ``WORKDIR``; each ``RUN`` runs as written, in
  that directory, with the image's paths (``/opt/venv``...) pointing into the stand-in root and ``python`` being
  an interpreter of the bundle's Python minor version; so ``python -m venv`` and ``pip install -r
  requirements.txt`` (berth's wheel from the context, the pins from the index) happen for real;
- the runtime stage: ``COPY --from=build`` must find what the build stage made, ``COPY model/`` copies the
  bundle, ``ENV`` becomes the environment (``$PATH`` expanded), and ``ENTRYPOINT`` + ``CMD`` run as written, with
  the image's paths mapped into the stand-in root;
- then it asks the server for predictions and runs the ``HEALTHCHECK`` command.

What this cannot show (the base image's own contents, ``USER``, the layer cache) is covered by the lint tests and,
where an engine runs, by ``test_real_image``.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from berth.deploy.docker import HOME_DIR, build_context
from berth.monitoring.store import Store
from support.ports import free_port
from tests.deploy.dockerfile_checks import env_of, exec_form, stages
from tests.deploy.image_cache import image_root, mark_complete
from tests.serving.conftest import IRIS_X

pytestmark = pytest.mark.slow
ROWS = IRIS_X.iloc[[0, 60, 120, 149]]


@dataclass
class Image:
    """The stand-in image: its root, the environment of ENV, and the command of ENTRYPOINT + CMD."""

    root: Path
    env: dict[str, str]
    command: list[str]
    healthcheck: list[str]
    build_seconds: float
    dockerfile: str  # the text that was played

    def path(self, container_path: str) -> str:
        return str(self.root / container_path.lstrip("/"))


def map_paths(text: str, root: Path, prefixes: set[str]) -> str:
    """Every absolute path of the image under one of ``prefixes`` moved under ``root``."""
    pattern = "|".join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))
    return re.sub(rf"(?<![\w/.])({pattern})(?=/|\b|$)", lambda m: str(root) + m.group(1), text)


def copy_in(source: Path, destination: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination if not str(destination).endswith("/") else destination / source.name)


def play(context: Path, root: Path) -> Image:
    """Carry out the Dockerfile of ``context`` into ``root``; returns the runnable image."""
    text = (context / "Dockerfile").read_text()
    all_stages = stages(text)
    python_bin = root.parent / "python-bin"  # "python" on the build stage's PATH: the base image's interpreter
    python_bin.mkdir(exist_ok=True)
    base = Path(getattr(sys, "_base_executable", sys.executable))
    (python_bin / "python").unlink(missing_ok=True)
    (python_bin / "python").symlink_to(base)
    prefixes = {"/opt", "/build"}
    for stage in all_stages:
        for instruction in stage.instructions:
            if instruction["instruction"] in ("WORKDIR",):
                prefixes.add(instruction["value"])
            if instruction["instruction"] == "COPY":
                prefixes.add(instruction["value"].split()[-1].rstrip("/") or "/")
            if instruction["instruction"] == "VOLUME":
                prefixes.update(exec_form(instruction["value"]) or instruction["value"].split())
    started = time.monotonic()
    build, runtime = all_stages[0], all_stages[-1]
    workdir = root
    for instruction in build.instructions:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "WORKDIR":
            workdir = Path(map_paths(value, root, prefixes))
            workdir.mkdir(parents=True, exist_ok=True)
        elif kind == "COPY":
            *sources, destination = value.split()
            for source in sources:
                target = workdir / destination if not destination.startswith("/") else Path(
                    map_paths(destination, root, prefixes))
                copy_in(context / source, target / Path(source).name if destination.endswith("/") and not
                        source.endswith("/") else target)
        elif kind == "RUN":
            command = map_paths(value, root, prefixes)
            env = {**os.environ, "PATH": f"{python_bin}{os.pathsep}{os.environ['PATH']}",
                   **{k: v for k, v in (pair.split("=", 1) for s in build.values("ENV") for pair in shlex.split(s))}}
            result = subprocess.run(["/bin/sh", "-c", command], cwd=workdir, env=env, capture_output=True, text=True)
            assert result.returncode == 0, f"RUN {value}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    build_seconds = time.monotonic() - started
    for instruction in runtime.instructions:
        kind, value = instruction["instruction"], instruction["value"]
        if kind == "COPY" and value.startswith("--from="):
            _, source, destination = value.split()
            assert Path(map_paths(source, root, prefixes)).is_dir(), f"the build stage made no {source}"
            assert map_paths(source, root, prefixes) == map_paths(destination, root, prefixes)
        elif kind == "COPY":
            source, destination = value.split()
            copy_in(context / source, Path(map_paths(destination, root, prefixes)))
        elif kind == "VOLUME":  # the engine mounts a fresh (writable) volume there
            for path in exec_form(value) or value.split():
                Path(map_paths(path, root, prefixes)).mkdir(parents=True, exist_ok=True)
    env = {}
    for key, raw in env_of(text).items():
        value = raw.replace("$PATH", os.environ["PATH"])
        env[key] = map_paths(value, root, prefixes) if key in ("PATH", "BERTH_HOME") else value
    entrypoint = exec_form(runtime.values("ENTRYPOINT")[-1]) or []
    cmd = exec_form(runtime.values("CMD")[-1]) if runtime.values("CMD") else []
    command = [map_paths(word, root, prefixes) for word in [*entrypoint, *(cmd or [])]]
    health = runtime.values("HEALTHCHECK")[-1]
    healthcheck = exec_form(health[health.index("CMD") + 3:].strip()) or []
    return Image(root, env, command, healthcheck, build_seconds, text)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory, iris_bundle: Path, berth_wheel: Path) -> Iterator[Image]:
    """The image's root under the test cache (tests/deploy/image_cache.py): the pinned libraries installed by an
    earlier run stay, as in Docker's layer cache; the Dockerfile is played as written either way."""
    context = build_context(iris_bundle, tmp_path_factory.mktemp("context") / "ctx", berth_wheel=str(berth_wheel))
    python = ".".join(context.manifest.python.split(".")[:2])
    if python != f"{sys.version_info.major}.{sys.version_info.minor}":
        pytest.skip(f"the bundle needs Python {python}, this is {sys.version_info.major}.{sys.version_info.minor}")
    with image_root(context.directory) as slot:
        built = play(context.directory, slot.root)
        mark_complete(slot)
        kind = "kept" if slot.reused else "fresh"
        print(f"\nbuild stage (pip install --require-hashes -r requirements.lock into a {kind} venv): "
              f"{built.build_seconds:.1f} s")
        yield built


def run_container(image: Image, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``docker run -e ... IMAGE args``: ENTRYPOINT + (args or CMD), with the image's ENV plus ``env``."""
    command = image.command if not args else [*image.command[: len(image.command)], *args]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "AIP_", "SAGEMAKER_", "VIRTUAL_ENV",
                                                                         "PYTHON"))}
    return subprocess.Popen(command, env={**clean, **image.env, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the container's server exited with {process.returncode}:\n"
                                 f"{process.stdout.read() if process.stdout else ''}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"not ready within {timeout} s")


def stop(process: subprocess.Popen[str]) -> str:
    """Stop the server; what it printed. The pipe is closed: nothing is left for the garbage collector."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)
    if process.stdout is None:
        return ""
    with process.stdout:
        return process.stdout.read()


def test_the_image_runs_its_own_berth_from_the_fresh_environment(image: Image) -> None:
    assert image.command[:2] == ["berth", "serve"]
    berth = shutil.which("berth", path=image.env["PATH"])
    assert berth == image.path("/opt/venv/bin/berth")
    assert image.command[2] == image.path("/opt/ml/model")
    listing = subprocess.run([image.path("/opt/venv/bin/python"), "-m", "pip", "list", "--format=freeze"],
                             capture_output=True, text=True, check=True).stdout
    installed = {canonical(name): version for name, version in
                 (line.split("==") for line in listing.splitlines() if "==" in line)}
    lock = Path(image.path("/build/requirements.lock")).read_text()
    pins = {canonical(name): version.split()[0] for name, version in
            (line.split("==") for line in lock.splitlines() if "==" in line)}
    assert pins and all(installed.get(name) == version for name, version in pins.items()), (pins, installed)
    # the environment is exactly the lock: nothing resolved at build time (pip itself comes with the venv)
    assert set(installed) - set(pins) <= {"pip", "setuptools", "berth"}, set(installed) - set(pins)
    assert {"fastapi", "uvicorn", "pandas", "pyarrow", "numpy", "scikit-learn"} <= set(pins)
    assert installed["berth"] == "0.1.0" and "torch" not in installed and "keras" not in installed


def test_the_build_stage_installs_the_lock_with_require_hashes(image: Image) -> None:
    """The RUN line that made the environment (it ran above, for real) installed only hashed pins."""
    assert "pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock" in image.dockerfile
    lock = Path(image.path("/build/requirements.lock")).read_text()
    requirements = [line for line in lock.splitlines() if line and not line.startswith(("#", "--", " "))]
    assert requirements and all("--hash=sha256:" in line or line.endswith("\\") for line in requirements)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_entrypoint_as_written_serves_predictions(image: Image, iris_model) -> None:
    port = free_port()
    # docker run -e BERTH_PORT=... -e BERTH_HOST=127.0.0.1 IMAGE: a free loopback port instead of 8080
    process = run_container(image, env={"BERTH_PORT": str(port), "BERTH_HOST": "127.0.0.1", "BERTH_WORKERS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health/ready", process)
        response = httpx.post(url + "/predict", json={"instances": ROWS.values.tolist()}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == iris_model.predict(ROWS).tolist()
        health = subprocess.run(image.healthcheck, env={**image.env, "BERTH_PORT": str(port)}, capture_output=True,
                                text=True, timeout=30)
        assert health.returncode == 0, health.stderr
    finally:
        log = stop(process)
    assert process.returncode == 0, log
    dead = subprocess.run(image.healthcheck, env={**image.env, "BERTH_PORT": str(port)}, capture_output=True,
                          timeout=30)
    assert dead.returncode != 0  # the health check fails when nothing answers


def test_prediction_log_is_written_under_the_images_own_settings(image: Image, iris_model) -> None:
    """No BERTH_HOME or BERTH_MONITOR_DIR given at run time: the image's own BERTH_HOME volume takes the log,
    and the startup log says where it goes."""
    assert image.env["BERTH_HOME"] == image.path(HOME_DIR)
    port = free_port()
    process = run_container(image, env={"BERTH_PORT": str(port), "BERTH_HOST": "127.0.0.1", "BERTH_WORKERS": "1",
                                        "BERTH_LOG_FLUSH_INTERVAL_S": "0.2"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health/ready", process)
        for i in range(3):
            response = httpx.post(url + "/predict", json={"instances": ROWS.values.tolist()}, timeout=10,
                                  headers={"x-request-id": f"own-settings-{i}"})
            assert response.status_code == 200, response.text
    finally:
        output = stop(process)
    assert process.returncode == 0, output
    monitoring = Path(image.path(HOME_DIR)) / "monitoring"
    assert f"prediction log: writing to {monitoring}" in output, output
    assert "cannot write" not in output, output
    rows = Store(monitoring).read("iris").to_pandas()  # the other tests' servers wrote to this volume too
    rows = rows[rows["request_id"].str.startswith("own-settings-")].sort_values(["request_id", "row"])
    assert len(rows) == 3 * len(ROWS)
    assert rows["prediction"].tolist() == [float(p) for p in iris_model.predict(ROWS)] * 3


def test_a_home_that_cannot_be_written_is_reported_at_startup(image: Image, tmp_path: Path) -> None:
    """A home where nothing can be written (here a plain file, which stops even root): the server still serves,
    and says so at startup rather than only in a counter."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    port = free_port()
    process = run_container(image, env={"BERTH_PORT": str(port), "BERTH_HOST": "127.0.0.1", "BERTH_WORKERS": "1",
                                        "BERTH_HOME": str(blocked)})
    try:
        wait_ready(f"http://127.0.0.1:{port}/health/ready", process)
    finally:
        output = stop(process)
    assert f"prediction log: cannot write to {blocked / 'monitoring'}" in output, output


def test_sagemaker_start_argument(image: Image, iris_model) -> None:
    """``docker run IMAGE serve``, as SageMaker does: /ping and /invocations on $SAGEMAKER_BIND_TO_PORT."""
    port = free_port()
    process = run_container(image, "serve", env={"SAGEMAKER_BIND_TO_PORT": str(port), "BERTH_HOST": "127.0.0.1",
                                                 "BERTH_WORKERS": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/ping", process)
        csv = ROWS.to_csv(index=False)
        response = httpx.post(url + "/invocations", content=csv, headers={"content-type": "text/csv"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": iris_model.predict(pd.DataFrame(ROWS)).tolist()}
    finally:
        stop(process)


def test_real_image(tmp_path: Path, iris_bundle: Path, berth_wheel: Path, iris_model) -> None:
    """Where a Docker engine answers: docker build, docker run, a prediction, and a clean stop."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    if info.returncode != 0:
        reason = (info.stderr or info.stdout).strip().splitlines()
        pytest.skip(f"no Docker engine answers `docker info`: {reason[-1] if reason else info.returncode}")
    context = build_context(iris_bundle, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    tag = f"berth-test-{os.getpid()}:latest"
    subprocess.run([docker, "build", "-t", tag, str(context.directory)], check=True, timeout=900)
    port = free_port()
    name = f"berth-test-{os.getpid()}"
    subprocess.run([docker, "run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8080", tag], check=True,
                   timeout=60)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        response = httpx.post(f"http://127.0.0.1:{port}/predict", json={"instances": ROWS.values.tolist()})
        assert response.json()["predictions"] == iris_model.predict(ROWS).tolist()
        user = subprocess.run([docker, "exec", name, "id", "-u"], capture_output=True, text=True, check=True)
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run([docker, "stop", "-t", "40", name], capture_output=True, timeout=90)
        subprocess.run([docker, "rmi", tag], capture_output=True, timeout=60)
