"""The ``berth`` command line: the real console script for exit codes and errors, CliRunner for the rest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from typer.testing import CliRunner

import berth
from berth.cli import app
from berth.manifest import MANIFEST_NAME

Iris = tuple[pd.DataFrame, pd.Series]
BERTH = Path(sys.executable).parent / "berth"
runner = CliRunner()


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BERTH), *map(str, args)], capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- the real console script


def test_help_and_version_exit_0() -> None:
    shown = run("--help")
    assert shown.returncode == 0
    for command in ("inspect", "verify", "import", "predict", "pack", "unpack", "version"):
        assert command in shown.stdout
    version = run("version")
    assert version.returncode == 0
    assert version.stdout.startswith(f"berth {berth.__version__}")


def test_the_cli_module_imports_nothing_heavy() -> None:
    probe = ("import sys, berth.cli; print(sorted(m for m in ('pandas', 'numpy', 'sklearn', 'pyarrow', "
             "'berth.bundle', 'berth.model') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_usage_errors_exit_2_without_a_traceback(tmp_path: Path) -> None:
    for args in (["nope"], ["inspect"], ["predict", str(tmp_path), "--input", "x.csv"],
                 ["serve", str(tmp_path / "missing-bundle")]):
        done = run(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert "nothing to serve at" in done.stderr  # serve fails fast on a typo instead of starting unready


def test_berth_errors_exit_with_their_code_and_a_clean_message(tmp_path: Path, iris_forest_bundle: Path,
                                                               iris_data: Iris) -> None:
    missing = run("verify", tmp_path / "nowhere")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr

    X, _ = iris_data
    rows = tmp_path / "rows.csv"
    X.astype(object).assign(**{"petal width (cm)": ["0.2"] * 99 + ["thin"] + ["0.2"] * 50}).to_csv(rows, index=False)
    bad = run("predict", iris_forest_bundle, "--input", rows, "--output", tmp_path / "out.csv", "--chunk-size", "40")
    assert bad.returncode == 1
    assert "row 99" in bad.stderr and "petal width (cm)" in bad.stderr
    assert "  row 99 / petal width (cm): expected a number, got string 'thin'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "out.csv").exists()

    wrong_option = run("predict", iris_forest_bundle, "--input", rows, "--output", tmp_path / "out.xlsx")
    assert wrong_option.returncode == 2  # berth's UsageError
    assert "Traceback" not in wrong_option.stderr


def test_import_then_predict_end_to_end(tmp_path: Path, iris_forest: RandomForestClassifier,
                                        iris_data: Iris) -> None:
    X, _ = iris_data
    joblib.dump(iris_forest, tmp_path / "iris_model.joblib")
    assert run("import", tmp_path / "iris_model.joblib", "-o", tmp_path / "iris", "--trust").returncode == 0
    X.to_parquet(tmp_path / "rows.parquet")
    scored = run("predict", tmp_path / "iris", "--input", tmp_path / "rows.parquet",
                 "--output", tmp_path / "scores.csv")
    assert scored.returncode == 0, scored.stderr
    assert pd.read_csv(tmp_path / "scores.csv")["prediction"].tolist() == iris_forest.predict(X).tolist()


# --------------------------------------------------------------------------- in process, with CliRunner


def test_inspect_summarises_the_bundle(iris_forest_bundle: Path) -> None:
    result = runner.invoke(app, ["inspect", str(iris_forest_bundle)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    manifest = berth.inspect(iris_forest_bundle)
    for text in ("iris", "sklearn", "skops", "scikit-learn", "petal width (cm)", "float64", "model.skops",
                 manifest.files[0].sha256[:12], manifest.content_digest, "accuracy", "team", "Reference data",
                 "classes [0, 1, 2]"):
        assert text in result.stdout, text


def test_inspect_json_prints_the_manifest(iris_forest_bundle: Path) -> None:
    result = runner.invoke(app, ["inspect", str(iris_forest_bundle), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == json.loads((iris_forest_bundle / MANIFEST_NAME).read_text())


def test_verify_ok_and_tampered(iris_forest_bundle: Path) -> None:
    ok = runner.invoke(app, ["verify", str(iris_forest_bundle)])
    assert ok.exit_code == 0
    assert ok.stdout.startswith("OK ")
    assert berth.inspect(iris_forest_bundle).content_digest in ok.stdout

    with (iris_forest_bundle / "model.skops").open("ab") as handle:
        handle.write(b"tampered")
    bad = runner.invoke(app, ["verify", str(iris_forest_bundle)])
    assert bad.exit_code == 1
    assert bad.stderr.startswith("error: ")
    assert "model.skops" in bad.stderr
    assert "  files / model.skops: size is" in bad.stderr


def test_import_writes_a_bundle(tmp_path: Path, iris_forest: RandomForestClassifier) -> None:
    joblib.dump(iris_forest, tmp_path / "model.joblib", compress=("zlib", 3))
    result = runner.invoke(app, ["import", str(tmp_path / "model.joblib"), "-o", str(tmp_path / "bundle"),
                                 "--trust", "--name", "iris"])
    assert result.exit_code == 0, result.output
    manifest = berth.inspect(tmp_path / "bundle")
    assert (manifest.name, manifest.format) == ("iris", "skops")
    assert manifest.content_digest in result.stdout
    again = runner.invoke(app, ["import", str(tmp_path / "model.joblib"), "-o", str(tmp_path / "bundle"),
                                "--trust"])
    assert again.exit_code == 1
    assert "--overwrite" in again.stderr
    refused = runner.invoke(app, ["import", str(tmp_path / "model.joblib"), "-o", str(tmp_path / "other")])
    assert refused.exit_code == 1
    assert "--trust" in refused.stderr


def test_predict_writes_predictions_and_probabilities(tmp_path: Path, iris_forest_bundle: Path,
                                                      iris_data: Iris, iris_forest: RandomForestClassifier) -> None:
    X, _ = iris_data
    X.assign(id=range(len(X))).to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    result = runner.invoke(app, ["predict", str(iris_forest_bundle), "--input", str(tmp_path / "rows.jsonl"),
                                 "--output", str(tmp_path / "out.parquet"), "--id-column", "id",
                                 "--probabilities", "--chunk-size", "32"])
    assert result.exit_code == 0, result.output
    assert "wrote 150 predictions" in result.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == ["id", "prediction", "proba_0", "proba_1", "proba_2"]
    assert out["prediction"].tolist() == iris_forest.predict(X).tolist()


def test_predict_needs_trust_for_a_pickle_bundle(tmp_path: Path, iris_forest: RandomForestClassifier,
                                                 iris_data: Iris) -> None:
    X, _ = iris_data
    berth.save(iris_forest, tmp_path / "bundle", format="joblib")
    X.to_csv(tmp_path / "rows.csv", index=False)
    args = ["predict", str(tmp_path / "bundle"), "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "o.csv")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 1
    assert "--trust" in refused.stderr
    assert runner.invoke(app, [*args, "--trust"]).exit_code == 0


@pytest.mark.parametrize("overwrite", [False, True])
def test_pack_and_unpack_round_trip(tmp_path: Path, iris_forest_bundle: Path, overwrite: bool) -> None:
    archive, copy = tmp_path / "iris.berth", tmp_path / "copy"
    packed = runner.invoke(app, ["pack", str(iris_forest_bundle), "-o", str(archive)])
    assert packed.exit_code == 0, packed.output
    assert archive.is_file()
    unpacked = runner.invoke(app, ["unpack", str(archive), "-o", str(copy)])
    assert unpacked.exit_code == 0, unpacked.output
    assert berth.inspect(copy).content_digest == berth.inspect(iris_forest_bundle).content_digest
    again = runner.invoke(app, ["unpack", str(archive), "-o", str(copy), *(["--overwrite"] if overwrite else [])])
    assert again.exit_code == (0 if overwrite else 1)
    assert runner.invoke(app, ["verify", str(archive)]).exit_code == 0


# --------------------------------------------------------------------------- conventions


def test_version_option_prints_what_version_prints() -> None:
    option, command = runner.invoke(app, ["--version"]), runner.invoke(app, ["version"])
    assert option.exit_code == command.exit_code == 0
    assert option.stdout == command.stdout and option.stdout.startswith(f"berth {berth.__version__} (Python ")


def test_shell_completion_is_on() -> None:
    shown = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="berth")
    assert script.exit_code == 0, script.output
    assert "_BERTH_COMPLETE=complete_bash" in script.stdout
    words = runner.invoke(app, [], env={"_BERTH_COMPLETE": "complete_bash", "COMP_WORDS": "berth se",
                                        "COMP_CWORD": "1"}, prog_name="berth")
    assert words.stdout.split() == ["serve"]  # what bash gets when it asks the completion protocol


def command_paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [prefix]
    return [prefix, *(p for name, sub in subcommands.items() for p in command_paths(sub, (*prefix, name)))]


def test_boolean_options_are_shown_as_flags_in_every_help() -> None:
    import typer

    paths = command_paths(typer.main.get_command(app))
    assert ("serve",) in paths and ("models", "list") in paths and ("monitor", "check") in paths
    for path in paths:
        shown = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert shown.exit_code == 0, (path, shown.output)
        assert "<bool>" not in shown.stdout, path
    serve = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--trust" in serve and "--no-batching" in serve and "<int>" in serve  # other types are still shown


def test_tables_are_tab_separated_when_piped(iris_forest_bundle: Path) -> None:
    result = runner.invoke(app, ["inspect", str(iris_forest_bundle)], env={"COLUMNS": "40"})  # a pipe, not a tty
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    manifest = berth.inspect(iris_forest_bundle)
    assert f"digest\t{manifest.content_digest}" in lines  # whole, on one line, however narrow the terminal
    assert "# Files" in lines and "path\tsize\tsha256" in lines
    assert "petal width (cm)\tfloat64\tno" in lines
    assert not any(mark in result.stdout for mark in "│┃━─╭")


def test_verify_and_predict_json(tmp_path: Path, iris_forest_bundle: Path, iris_data: Iris) -> None:
    verified = runner.invoke(app, ["verify", str(iris_forest_bundle), "--json"])
    manifest = berth.inspect(iris_forest_bundle)
    assert verified.exit_code == 0
    assert json.loads(verified.stdout) == {"uri": str(iris_forest_bundle), "ok": True, "name": manifest.name,
                                           "files": len(manifest.files), "content_digest": manifest.content_digest}
    X, _ = iris_data
    X.to_csv(tmp_path / "rows.csv", index=False)
    predicted = runner.invoke(app, ["predict", str(iris_forest_bundle), "-i", str(tmp_path / "rows.csv"),
                                    "-o", str(tmp_path / "out.csv"), "--json"])
    assert predicted.exit_code == 0, predicted.output
    assert json.loads(predicted.stdout) == {"rows": 150, "output": str(tmp_path / "out.csv")}


def test_unpack_of_anything_but_an_archive_is_one_line(tmp_path: Path, iris_forest_bundle: Path) -> None:
    (tmp_path / "text.berth").write_text("not an archive\n")
    archive = tmp_path / "iris.berth"
    assert runner.invoke(app, ["pack", str(iris_forest_bundle), "-o", str(archive)]).exit_code == 0
    (tmp_path / "cut.berth").write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    for source, reason in ((tmp_path / "text.berth", "not a gzip-compressed tar file"),
                           (tmp_path / "cut.berth", "damaged or truncated"),
                           (iris_forest_bundle, "is a directory, not a .berth archive")):
        result = runner.invoke(app, ["unpack", str(source), "-o", str(tmp_path / "out")])
        assert result.exit_code == 1, result.output
        assert result.stderr.count("\n") == 1 and reason in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_import_pack_unpack_json(tmp_path: Path, iris_forest: RandomForestClassifier,
                                 iris_forest_bundle: Path) -> None:
    joblib.dump(iris_forest, tmp_path / "model.joblib")
    imported = runner.invoke(app, ["import", str(tmp_path / "model.joblib"), "-o", str(tmp_path / "b"), "--trust",
                                   "--name", "iris", "--json"])
    assert imported.exit_code == 0, imported.output
    report = json.loads(imported.stdout)
    manifest = berth.inspect(tmp_path / "b")
    assert report == {"source": str(tmp_path / "model.joblib"), "output": str(tmp_path / "b"), "name": "iris",
                      "flavor": "sklearn", "format": "skops", "files": len(manifest.files),
                      "content_digest": manifest.content_digest}
    archive = tmp_path / "iris.berth"
    packed = json.loads(runner.invoke(app, ["pack", str(iris_forest_bundle), "-o", str(archive), "--json"]).stdout)
    unpacked = json.loads(runner.invoke(app, ["unpack", str(archive), "-o", str(tmp_path / "u"), "--json"]).stdout)
    digest = berth.inspect(iris_forest_bundle).content_digest
    assert (packed["output"], packed["content_digest"]) == (str(archive), digest)
    assert (unpacked["archive"], unpacked["output"], unpacked["content_digest"]) == (
        str(archive), str(tmp_path / "u"), digest)
