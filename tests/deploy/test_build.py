"""berth build: the context it writes (bundle, requirements, Dockerfile), its options and its errors."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from berth.cli import app
from berth.deploy import requirements
from berth.deploy.docker import build_context, default_base_image
from berth.errors import IntegrityError, UsageError
from berth.manifest import read_manifest, verify_directory
from berth.packing import pack
from tests.deploy.dockerfile_checks import env_of, exec_form, problems, stages


def test_context_holds_the_verified_bundle_pinned_requirements_and_a_dockerfile(
        tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    context = build_context(iris_bundle, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    directory = context.directory
    assert sorted(p.name for p in directory.iterdir()) == [".dockerignore", "Dockerfile", "model",
                                                            "requirements.txt", "wheels"]
    manifest = read_manifest(directory / "model")
    verify_directory(directory / "model", manifest)
    assert manifest.content_digest == read_manifest(iris_bundle).content_digest
    lines = [line for line in (directory / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")]
    expected = [f"{name}=={version}" for name, version in sorted(manifest.libraries.items()) if name != "berth"]
    assert lines == [*expected, f"./wheels/{berth_wheel.name}"]
    assert "scikit-learn" in manifest.libraries and all("torch" not in line for line in lines)
    assert (directory / "wheels" / berth_wheel.name).is_file()
    text = (directory / "Dockerfile").read_text()
    assert problems(text) == []
    python = ".".join(manifest.python.split(".")[:2])
    assert [s.image for s in stages(text)] == [f"python:{python}-slim-bookworm"] * 2
    assert context.port == 8080 and env_of(text)["BERTH_PORT"] == "8080" and env_of(text)["BERTH_HOST"] == "0.0.0.0"


def test_wheel_built_from_the_source_tree_is_berth(berth_wheel: Path) -> None:
    with zipfile.ZipFile(berth_wheel) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "Name: berth" in wheel.read(metadata).decode()
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "berth/serving/platforms.py" in names and "berth/deploy/docker.py" in names
    assert "berth = berth.cli:main" in entry_points and "sklearn = berth.flavors.sklearn:SklearnFlavor" in entry_points
    assert not any("__pycache__" in n for n in names)


def test_default_build_uses_a_wheel_from_this_checkout(tmp_path: Path, iris_bundle: Path) -> None:
    context = build_context(iris_bundle, tmp_path / "ctx")
    assert context.berth.wheel is not None and context.berth.wheel.is_file()
    assert "a wheel built from" in context.berth.origin
    assert context.berth.requirement in (tmp_path / "ctx" / "requirements.txt").read_text()
    assert not (Path(__file__).parents[2] / "build").exists()  # the build left nothing in the checkout


@pytest.mark.parametrize(("target", "platform"), [("sagemaker", "sagemaker"), ("vertex", "vertex"),
                                                  ("azure", None), ("kserve", None), ("generic", None)])
def test_targets_set_their_defaults(tmp_path: Path, iris_bundle: Path, berth_wheel: Path, target: str,
                                    platform: str | None) -> None:
    context = build_context(iris_bundle, tmp_path / "ctx", target=target, berth_wheel=str(berth_wheel))
    text = (context.directory / "Dockerfile").read_text()
    assert env_of(text).get("BERTH_PLATFORM") == platform
    assert problems(text) == []
    assert context.port == 8080 and context.next_steps()


def test_options_port_base_image_and_extra_requirements(tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    extra_file = tmp_path / "more.txt"
    extra_file.write_text("# monitoring\nhttpx>=0.27  # client\n\n")
    context = build_context(iris_bundle, tmp_path / "ctx", port=9000, base_image="python:3.11.9-slim-bookworm",
                            extra_requirements=["orjson>=3.9,pyyaml==6.0.2", f"@{extra_file}"],
                            berth_wheel=str(berth_wheel))
    text = (context.directory / "Dockerfile").read_text()
    assert problems(text) == []
    assert env_of(text)["BERTH_PORT"] == "9000"
    final = stages(text)[-1]
    assert final.values("EXPOSE") == ["9000"] and final.image == "python:3.11.9-slim-bookworm"
    assert (context.directory / "requirements.txt").read_text().endswith(
        "# --extra-requirements\norjson>=3.9\npyyaml==6.0.2\nhttpx>=0.27\n")


def test_entrypoint_serves_the_bundle_where_it_is_copied(tmp_path: Path, iris_bundle: Path,
                                                         berth_wheel: Path) -> None:
    context = build_context(iris_bundle, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    final = stages((context.directory / "Dockerfile").read_text())[-1]
    assert exec_form(final.values("ENTRYPOINT")[0]) == ["berth", "serve", "/opt/ml/model"]
    assert "model/ /opt/ml/model/" in final.values("COPY")


def test_packed_archive_is_a_source_too(tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    archive = tmp_path / "iris.berth"
    pack(iris_bundle, archive)
    context = build_context(archive, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    assert read_manifest(context.directory / "model").content_digest == read_manifest(iris_bundle).content_digest


def test_registered_model_is_a_source_too(tmp_path: Path, iris_bundle: Path, berth_wheel: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from berth.registry import Registry

    monkeypatch.setenv("BERTH_HOME", str(tmp_path / "home"))
    for variable in ("BERTH_REGISTRY_URL", "BERTH_ARTIFACTS_URL"):
        monkeypatch.delenv(variable, raising=False)
    Registry().register(iris_bundle, "iris", aliases=["production"])
    context = build_context("models:/iris@production", tmp_path / "ctx", berth_wheel=str(berth_wheel))
    assert read_manifest(context.directory / "model").content_digest == read_manifest(iris_bundle).content_digest
    result = CliRunner().invoke(app, ["deploy", "k8s", "models:/iris/1", "-o", str(tmp_path / "k8s")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "k8s").is_dir() and any((tmp_path / "k8s").iterdir())


def test_tampered_bundle_is_refused_and_nothing_is_left(tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    copy = tmp_path / "iris"
    shutil.copytree(iris_bundle, copy)
    payload = next(p for p in copy.iterdir() if p.name != "berth.json")
    payload.write_bytes(payload.read_bytes() + b"x")
    with pytest.raises(IntegrityError):
        build_context(copy, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    assert not (tmp_path / "ctx").exists()


def test_output_is_not_clobbered(tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not empty"):
        build_context(iris_bundle, other, berth_wheel=str(berth_wheel))
    with pytest.raises(UsageError, match="does not look like a berth build context"):
        build_context(iris_bundle, other, overwrite=True, berth_wheel=str(berth_wheel))
    assert (other / "notes.txt").read_text() == "keep me"
    build_context(iris_bundle, tmp_path / "ctx", berth_wheel=str(berth_wheel))
    again = build_context(iris_bundle, tmp_path / "ctx", port=9001, overwrite=True, berth_wheel=str(berth_wheel))
    assert "EXPOSE 9001" in (again.directory / "Dockerfile").read_text()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": "heroku"}, "unknown target"),
    ({"target": "sagemaker", "port": 9000}, "listens on port 8080"),
    ({"port": 70000}, "expected 1 to 65535"),
    ({"extra_requirements": ["not a requirement!"]}, "is not a requirement"),
    ({"extra_requirements": ["scikit-learn==1.0"]}, "already pins scikit-learn"),
    ({"extra_requirements": ["@/nonexistent/reqs.txt"]}, "no such file"),
    ({"base_image": "python 3.11"}, "not an image reference"),
    ({"berth_wheel": "/nonexistent/berth-0.1.0-py3-none-any.whl"}, "expected an existing berth-"),
])
def test_bad_options_are_usage_errors(tmp_path: Path, iris_bundle: Path, berth_wheel: Path,
                                      kwargs: dict, message: str) -> None:
    kwargs.setdefault("berth_wheel", str(berth_wheel))
    with pytest.raises(UsageError, match=message):
        build_context(iris_bundle, tmp_path / "ctx", **kwargs)


def test_pins_drop_local_build_labels_and_name_their_index(iris_bundle: Path) -> None:
    manifest = read_manifest(iris_bundle)
    manifest.libraries = {"torch": "2.13.0+cpu", "numpy": "2.1.0", "berth": "0.1.0"}
    lines, indexes = requirements.pins(manifest)
    assert lines == ["numpy==2.1.0", "torch==2.13.0"]
    assert indexes == ["--extra-index-url https://download.pytorch.org/whl/cpu"]
    manifest.python = "unknown"
    with pytest.raises(UsageError, match="--base-image"):
        default_base_image(manifest)


def test_cli_build_reports_and_errors_without_traceback(tmp_path: Path, iris_bundle: Path,
                                                        berth_wheel: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(iris_bundle), "-o", str(tmp_path / "ctx"), "--target", "vertex",
                                 "--berth-wheel", str(berth_wheel)])
    assert result.exit_code == 0, result.output
    assert "target vertex" in result.output and "gcloud ai models upload" in result.output
    assert json.loads((tmp_path / "ctx" / "model" / "berth.json").read_text())["name"] == "iris"
    result = runner.invoke(app, ["build", str(iris_bundle), "-o", str(tmp_path / "ctx2"), "--target", "nope"])
    assert result.exit_code == 2
    assert "unknown target" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["build", str(tmp_path / "missing"), "-o", str(tmp_path / "ctx3")])
    assert result.exit_code == 1 and "Traceback" not in result.output
