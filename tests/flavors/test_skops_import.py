"""berth imports skops.io with a pruned scikit-learn discovery: the trusted-type list must stay skops' own."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("skops")
sklearn_utils = pytest.importorskip("sklearn.utils")

from berth.flavors import skops_import  # noqa: E402

TRUSTED_LISTS = ("SKLEARN_ESTIMATOR_TYPE_NAMES", "SKLEARN_INTERNAL_TYPE_NAMES", "SCIPY_UFUNC_TYPE_NAMES",
                 "NUMPY_UFUNC_TYPE_NAMES", "PRIMITIVE_TYPE_NAMES", "CONTAINER_TYPE_NAMES")


def fresh_process(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def trusted_lists_code(prelude: str) -> str:
    return (f"{prelude}\nimport json, sys\nimport skops.io._trusted_types as t\n"
            f"lists = {{name: list(getattr(t, name, [])) for name in {TRUSTED_LISTS!r}}}\n"
            "print(json.dumps({'lists': lists, 'torch': 'torch' in sys.modules}))")


def test_installed_scikit_learn_discovery_is_verified() -> None:
    assert skops_import.is_verified(sys.modules["sklearn.utils.discovery"]), (
        "sklearn/utils/discovery.py is not one the pruned walk was checked against: compare its all_estimators "
        "with the argument in berth/flavors/skops_import.py, then add its sha256 to VERIFIED_DISCOVERY")


def test_pruned_discovery_finds_what_all_estimators_finds() -> None:
    assert skops_import.pruned_estimators() == sklearn_utils.all_estimators()


def test_a_type_filter_goes_to_scikit_learns_own() -> None:
    assert skops_import.pruned_estimators("classifier") == sklearn_utils.all_estimators("classifier")


def test_skops_trusts_the_same_types_and_torch_stays_out() -> None:
    plain = fresh_process(trusted_lists_code("import skops.io"))
    pruned = fresh_process(trusted_lists_code(
        "from berth.flavors.skops_import import import_skops_io\nimport_skops_io()\n"
        "import sklearn.utils, sklearn.utils.discovery as d\nassert sklearn.utils.all_estimators is d.all_estimators"))
    assert pruned["lists"] == plain["lists"]
    assert len(pruned["lists"]["SKLEARN_ESTIMATOR_TYPE_NAMES"]) > 100  # type: ignore[index]
    assert pruned["torch"] is False, "importing skops.io through berth imported torch"


def test_an_unverified_discovery_is_not_pruned(tmp_path: Path) -> None:
    changed = tmp_path / "discovery.py"
    changed.write_text(Path(sys.modules["sklearn.utils.discovery"].__file__ or "").read_text() + "\n# changed\n")
    module = types.ModuleType("sklearn.utils.discovery")
    module.__file__ = str(changed)
    module._MODULE_TO_IGNORE = {"tests"}  # type: ignore[attr-defined]
    assert not skops_import.is_verified(module)
    module.__file__ = sys.modules["sklearn.utils.discovery"].__file__
    assert skops_import.is_verified(module)
