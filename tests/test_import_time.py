"""``import berth`` and ``berth --help`` stay light: no machine-learning framework, no numpy or pandas.

Each check runs in a fresh interpreter with ``-X importtime`` (``PYTHONPROFILEIMPORTTIME=1``), which lists every
module imported, and asserts that none of the heavy packages appears.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "sklearn", "skops", "torch", "keras", "tensorflow", "jax",
         "onnx", "onnxruntime")


def imported_packages(stderr: str) -> set[str]:
    """Top-level package names from ``-X importtime`` output (``import time: self | cumulative | name``)."""
    packages = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":  # the header line
                packages.add(name.split(".")[0])
    return packages


def run_profiled(command: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "COLUMNS": "100"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def berth_script() -> Path | None:
    """The ``berth`` console script beside the interpreter running the tests (the project's .venv)."""
    candidates = [Path(sys.executable).parent / "berth", Path(__file__).resolve().parents[1] / ".venv/bin/berth"]
    return next((path for path in candidates if path.is_file()), None)


def test_parser_reads_importtime_output() -> None:
    sample = ("import time: self [us] | cumulative | imported package\n"
              "import time:       120 |        120 |   numpy.core\n"
              "import time:        80 |        200 | berth\n")
    assert imported_packages(sample) == {"numpy", "berth"}


def test_import_berth_imports_no_heavy_package() -> None:
    result = run_profiled([sys.executable, "-X", "importtime", "-c", "import berth; berth.__all__"])
    packages = imported_packages(result.stderr)
    assert "berth" in packages, "the import profile did not list berth itself"
    heavy = sorted(packages.intersection(HEAVY))
    assert not heavy, f"`import berth` imports {', '.join(heavy)}; import them lazily, where they are used"


def test_cli_help_imports_no_heavy_package() -> None:
    script = berth_script()
    if script is None:
        pytest.skip("the berth console script is not installed (run ./scripts/setup)")
    result = run_profiled([str(script), "--help"])
    assert "Usage" in result.stdout
    packages = imported_packages(result.stderr)
    assert "berth" in packages
    heavy = sorted(packages.intersection(HEAVY))
    assert not heavy, f"`berth --help` imports {', '.join(heavy)}; import them lazily, inside the commands"


@pytest.mark.parametrize("module", ["berth.manifest", "berth.signature", "berth.source", "berth.packing",
                                    "berth.registry.store", "berth.deploy.docker"])
def test_the_read_side_of_a_bundle_imports_no_heavy_package(module: str) -> None:
    """Reading and verifying a bundle (the registry, packing, berth build, berth inspect) needs no numpy or
    pandas: those belong to saving (berth.bundle, berth.signature_inference) and loading a model."""
    result = run_profiled([sys.executable, "-X", "importtime", "-c", f"import {module}"])
    packages = imported_packages(result.stderr)
    heavy = sorted(packages.intersection(HEAVY))
    assert not heavy, f"`import {module}` imports {', '.join(heavy)}"


def test_json_ready_converts_numpy_and_pandas_values_once_they_are_imported() -> None:
    import numpy as np
    import pandas as pd

    from berth.signature import json_ready

    value = {"a": np.array([1.5, np.nan]), "b": np.int64(3), "c": pd.Timestamp("2026-01-02"), 4: (np.float32(2),)}
    assert json_ready(value) == {"a": [1.5, None], "b": 3, "c": "2026-01-02T00:00:00", "4": [2.0]}
