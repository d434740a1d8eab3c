"""The twin in the bundle: hashed and verified, checked in the manifest, added by ``berth compile``, shown by
``berth inspect``, left out by ``--no-compile``; loading it imports neither scikit-learn, skops nor pandas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import berth
from berth.cli.main import app
from berth.compile import TWIN_FILE
from berth.errors import BundleError, IntegrityError
from tests.compile.conftest import IRIS_X

runner = CliRunner()


def copy(bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(bundle, target)
    return target


def test_a_tampered_twin_fails_verification(iris_twin_bundle: Path, tmp_path: Path) -> None:
    bundle = copy(iris_twin_bundle, tmp_path)
    data = bytearray((bundle / TWIN_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / TWIN_FILE).write_bytes(bytes(data))
    for compiled in (True, False):
        with pytest.raises(IntegrityError, match="compiled/model.onnx"):
            berth.load(bundle, compiled=compiled)


def external_data_graph(location: str) -> bytes:
    """An ONNX graph whose only output is an initializer stored as 'external data' at ``location``."""
    from onnx import TensorProto, helper

    tensor = TensorProto(name="w", data_type=TensorProto.UINT8, dims=[16], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Identity", ["w"], ["label"])], "exfiltrate",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 4])],
                              [helper.make_tensor_value_info("label", TensorProto.UINT8, [16])], initializer=[tensor])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_twin_cannot_read_files_outside_its_bundle(iris_twin_bundle: Path, tmp_path: Path, where: str) -> None:
    """A hostile bundle's twin (re-hashed, so it verifies) names a file outside the bundle as a tensor's external
    data, to answer predictions with its bytes: loading refuses it (onnxruntime >= 1.27 validates external data
    paths; berth's onnx extra requires it)."""
    from berth.manifest import sha256_file

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET-SECRET-SE")
    bundle = copy(iris_twin_bundle, tmp_path)
    location = str(secret) if where == "absolute" else "../../secret.bin"  # from copy/compiled/ to tmp_path
    (bundle / TWIN_FILE).write_bytes(external_data_graph(location))
    manifest = json.loads((bundle / "berth.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == TWIN_FILE:
            entry.update(sha256=sha256_file(bundle / TWIN_FILE), size=(bundle / TWIN_FILE).stat().st_size)
    (bundle / "berth.json").write_text(json.dumps(manifest))
    with pytest.raises(berth.FlavorError, match="cannot load the compiled twin.*[Ee]xternal data"):
        berth.load(bundle)


def test_a_manifest_claiming_an_unlisted_twin_is_refused(iris_twin_bundle: Path, tmp_path: Path) -> None:
    bundle = copy(iris_twin_bundle, tmp_path)
    manifest = json.loads((bundle / "berth.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if f["path"] != TWIN_FILE]
    (bundle / "berth.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="compiled.file: must be compiled/model.onnx, listed"):
        berth.load(bundle)


@pytest.mark.parametrize(("change", "message"), [
    ({"runtime": "tensorrt"}, "compiled.runtime"),
    ({"refused": "x" * 5000}, "compiled.refused"),
    ({"input_dtype": "int8"}, "compiled.input_dtype"),
    ({"outputs": {"label": "label"}}, "compiled.outputs"),
    ({"classes": [{"a": 1}]}, "compiled.classes"),
    ({"rows_tried": -1}, "compiled.rows_tried"),
    ({"output": {"dtype": "<U100000000", "squeeze": True}}, "compiled.output.dtype"),  # 400 MB a label
    ({"output": {"dtype": "V1000000", "squeeze": True}}, "compiled.output.dtype"),
])
def test_hostile_compiled_sections_are_refused(iris_twin_bundle: Path, tmp_path: Path, change: dict,
                                               message: str) -> None:
    bundle = copy(iris_twin_bundle, tmp_path)
    manifest = json.loads((bundle / "berth.json").read_text())
    manifest["compiled"].update(change)
    (bundle / "berth.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        berth.inspect(bundle)


def test_compile_and_inspect_commands(tmp_path: Path, iris_logistic: LogisticRegression) -> None:
    berth.save(iris_logistic, tmp_path / "plain", sample=IRIS_X.head(5), reference=IRIS_X, compile=False)
    result = runner.invoke(app, ["compile", str(tmp_path / "plain"), "-o", str(tmp_path / "twin")])
    assert result.exit_code == 0, result.output
    assert "compiled " in result.output and "onnxruntime (proof: " in result.output
    manifest = berth.inspect(tmp_path / "twin")
    source = berth.inspect(tmp_path / "plain")
    assert manifest.compiled is not None and manifest.compiled["rows_tried"] > 2000
    assert manifest.lineage["compiled_from"] == source.content_digest
    assert {e.path for e in manifest.files} == {"model.skops", TWIN_FILE}
    assert berth.load(tmp_path / "twin").compiled and not (tmp_path / "plain" / "compiled").exists()
    shown = runner.invoke(app, ["inspect", str(tmp_path / "twin")], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "Compiled twin: onnxruntime (proof: " in shown.output
    assert "tolerance" in shown.output and "skl2onnx" in shown.output


def test_compile_refusal_is_a_message_and_an_exit_code(tmp_path: Path) -> None:
    from tests.custom_estimators import ThresholdClassifier

    berth.save(ThresholdClassifier().fit(IRIS_X, [0, 1] * 75), tmp_path / "custom", sample=IRIS_X.head(5),
               format="joblib", compile=False)
    result = subprocess.run([str(Path(sys.executable).parent / "berth"), "compile", str(tmp_path / "custom"), "-o",
                             str(tmp_path / "out"), "--trust"], capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: cannot compile" in result.stderr and "conversion failed" in result.stderr
    assert not (tmp_path / "out").exists()
    shown = runner.invoke(app, ["inspect", str(tmp_path / "custom")], env={"COLUMNS": "200"})
    assert "Compiled twin" not in shown.output  # saved without compile: nothing to show


def test_register_compile_registers_a_bundle_with_its_twin(tmp_path: Path,
                                                          iris_logistic: LogisticRegression) -> None:
    from tests.custom_estimators import ThresholdClassifier

    registry = ["--registry", f"sqlite:///{tmp_path / 'registry.db'}", "--artifacts", str(tmp_path / "artifacts")]
    berth.save(iris_logistic, tmp_path / "plain", sample=IRIS_X.head(5), reference=IRIS_X, compile=False)
    result = runner.invoke(app, ["register", str(tmp_path / "plain"), "-n", "iris", "--compile", *registry])
    assert result.exit_code == 0, result.output
    assert "compiled twin: onnxruntime (proof: " in result.output and "registered iris version 1" in result.output
    source = berth.inspect(tmp_path / "plain")
    shown = runner.invoke(app, ["inspect", "models:/iris/1"], env={"COLUMNS": "200", "BERTH_REGISTRY_URL": registry[1]})
    assert shown.exit_code == 0 and "Compiled twin: onnxruntime" in shown.output, shown.output
    assert source.content_digest[:12] in shown.output  # lineage: compiled from the plain bundle
    assert not (tmp_path / "plain" / "compiled").exists()  # the source bundle is left as it was

    # the same bundle again: the version compiled from it is found (as a plain register finds the same digest)
    registered = runner.invoke(app, ["register", str(tmp_path / "plain"), "-n", "iris", "--compile", *registry,
                                     "--alias", "staging", "--json"])
    assert registered.exit_code == 0, registered.output
    answer = json.loads(registered.output)
    assert answer["version"] == 1 and answer["existing"] and answer["compiled_twin"].startswith("onnxruntime")
    from berth.registry.store import Registry

    with Registry(registry[1], registry[3]) as store:
        assert store.aliases("iris") == {"staging": 1} and len(store.versions("iris")) == 1
    # a bundle that already has a proven twin is registered as it is: its own digest
    runner.invoke(app, ["compile", str(tmp_path / "plain"), "-o", str(tmp_path / "twin")])
    twin = berth.inspect(tmp_path / "twin")
    again = runner.invoke(app, ["register", str(tmp_path / "twin"), "-n", "iris", "--compile", *registry, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["digest"] == twin.content_digest

    # refused: an error, and nothing registered
    berth.save(ThresholdClassifier().fit(IRIS_X, [0, 1] * 75), tmp_path / "custom", sample=IRIS_X.head(5),
               format="joblib", compile=False)
    refused = runner.invoke(app, ["register", str(tmp_path / "custom"), "-n", "custom", "--compile", "--trust",
                                  *registry])
    assert refused.exit_code == 1 and "cannot compile" in refused.output
    listed = runner.invoke(app, ["models", "list", "--json", *registry[:2]])
    assert "custom" not in {model["name"] for model in json.loads(listed.output)}


def test_import_no_compile_leaves_no_twin(tmp_path: Path, iris_logistic: LogisticRegression) -> None:
    joblib.dump(iris_logistic, tmp_path / "model.joblib")
    for flag, expect in (("--no-compile", False), (None, True)):
        out = tmp_path / f"bundle-{expect}"
        args = ["import", str(tmp_path / "model.joblib"), "-o", str(out), "--trust"] + ([flag] if flag else [])
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        manifest = berth.inspect(out)
        assert (manifest.compiled is not None) is expect
        assert (TWIN_FILE in {e.path for e in manifest.files}) is expect
        assert ("compiled twin: onnxruntime" in result.output) is expect


def test_loading_and_predicting_with_the_twin_imports_no_sklearn_skops_or_pandas(iris_twin_bundle: Path) -> None:
    code = f"""
import sys
from pathlib import Path
import numpy as np
from berth.manifest import read_manifest, verify_directory
from berth.compile.twin import load_twin
directory = Path({str(iris_twin_bundle)!r})
manifest = read_manifest(directory)
verify_directory(directory, manifest)
twin = load_twin(directory, manifest)
print(twin.predict(np.array([[5.1, 3.5, 1.4, 0.2]])).tolist(), twin.predict_proba(np.zeros((1, 4))).shape)
print(sorted(m for m in ("sklearn", "skops", "pandas", "skl2onnx", "scipy") if m in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    prediction, imported = result.stdout.strip().splitlines()
    assert prediction == "[0] (1, 3)" and imported == "[]"
