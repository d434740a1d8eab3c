"""berth build --json: what was written, for scripts (deploy k8s --json is in test_kubernetes.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from berth.cli import app
from berth.model import inspect


def test_build_json_reports_the_context(tmp_path: Path, iris_bundle: Path, berth_wheel: Path) -> None:
    out = tmp_path / "ctx"
    result = CliRunner().invoke(app, ["build", str(iris_bundle), "-o", str(out), "--target", "sagemaker",
                                      "--berth-wheel", str(berth_wheel), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    manifest = inspect(iris_bundle)
    assert report["directory"] == str(out) and (out / "Dockerfile").is_file()
    assert (report["name"], report["content_digest"], report["target"], report["port"]) == (
        manifest.name, manifest.content_digest, "sagemaker", 8080)
    assert report["image"].startswith("berth-") and report["next_steps"] and report["berth"]
