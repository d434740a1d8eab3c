"""Reports (JSON and self-contained HTML) and the berth monitor / berth ui commands."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from berth.cli import app
from berth.model import LoadedModel
from berth.monitoring.feedback import read_labels
from berth.monitoring.report import build_report, render_html
from berth.monitoring.store import Store
from tests.monitoring.conftest import FEATURES, IRIS_X, log_rows, reference_rows, true_labels

runner = CliRunner()


@pytest.fixture
def shifted_store(store: Store, loaded: LoadedModel) -> Store:
    """An hour ago: 600 normal rows; now: 600 rows with petal length shifted by two standard deviations."""
    rows = reference_rows(600, seed=1)
    ids = log_rows(store, loaded, rows, start=time.time() - 3600, step=0.1, prefix="old")
    shifted = reference_rows(600, seed=2)
    shifted[:, FEATURES.index("petal length (cm)")] += 2 * IRIS_X["petal length (cm)"].std()
    log_rows(store, loaded, shifted, step=0.001, prefix="new")
    labels = true_labels(rows)
    Path(store.root / "labels.csv").write_text("request_id,label\n" + "".join(
        f"{i},{(label + 1) % 3 if n % 10 < 3 else label}\n" for n, (i, label) in enumerate(zip(ids, labels,
                                                                                               strict=True))))
    return store


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_report_finds_the_shift_and_is_self_contained(shifted_store: Store) -> None:
    report = build_report("iris", store=shifted_store)
    assert report["rows"] == 1200
    assert report["drift"]["drifted_features"] == ["petal length (cm)"]
    assert report["quality"]["features"]["petal length (cm)"]["out_of_range"] > 0
    page = render_html(report)
    assert page.count("<svg") >= 7  # drift scores, 4 features, predictions, traffic
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<script" not in page and "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # only references within the page (SVG clip paths)
    assert "petal length (cm)" in page and "Some drift" in page


def test_cli_report_json_and_html(shifted_store: Store, tmp_path: Path) -> None:
    root = str(shifted_store.root)
    code, output = invoke("monitor", "report", "iris", "--monitor-dir", root, "--since", "10m", "--format", "json",
                          "-o", str(tmp_path / "r.json"))
    assert code == 0, output
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"] == 600 and data["drift"]["drifted_features"] == ["petal length (cm)"]
    code, output = invoke("monitor", "report", "iris", "--monitor-dir", root, "-o", str(tmp_path / "r.html"),
                          "--drift-method", "petal length (cm)=psi:100")
    assert code == 0 and "1,200 predictions" in output
    assert "No drift" in (tmp_path / "r.html").read_text()


def test_cli_feedback_then_check_fails_on_accuracy_and_drift(shifted_store: Store) -> None:
    root = str(shifted_store.root)
    code, output = invoke("monitor", "feedback", "iris", str(shifted_store.root / "labels.csv"), "--monitor-dir", root)
    assert (code, output.strip()) == (0, "stored 600 labels for iris")
    report = build_report("iris", store=shifted_store)
    assert report["performance"]["overall"]["accuracy"] == pytest.approx(0.7, abs=0.02)
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", root, "--dataset-share", "0.2", "--min", "0.9")
    assert code == 1
    assert "FAIL dataset drift: petal length (cm)" in output and "FAIL accuracy" in output
    result = runner.invoke(app, ["monitor", "check", "iris", "--monitor-dir", root, "--dataset-share", "0.2",
                                 "--min", "0.9", "--json"])
    verdict = json.loads(result.stdout)
    assert result.exit_code == 1 and verdict["ok"] is False and verdict["rows"] == 1200
    assert verdict["problems"][0].startswith("dataset drift: petal length (cm)")
    assert any(problem.startswith("accuracy") for problem in verdict["problems"])
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", root, "--min", "0.6")
    assert code == 0, output


def test_check_passes_on_normal_traffic(store: Store, loaded: LoadedModel) -> None:
    log_rows(store, loaded, reference_rows(400, seed=3))
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", str(store.root))
    assert code == 0 and output.strip().endswith("no dataset drift and no performance drop in 400 predictions")
    result = runner.invoke(app, ["monitor", "check", "iris", "--monitor-dir", str(store.root), "--json"])
    assert result.exit_code == 0
    verdict = json.loads(result.stdout)
    assert {k: verdict[k] for k in ("model", "ok", "rows", "since", "version", "problems", "status")} == {
        "model": "iris", "ok": True, "rows": 400, "since": "24h", "version": None, "problems": [], "status": "ok"}


def test_cli_errors_print_without_traceback(store: Store, tmp_path: Path) -> None:
    code, output = invoke("monitor", "report", "nobody", "--monitor-dir", str(store.root))
    assert code == 1 and "no monitoring data for model 'nobody'" in output and "Traceback" not in output
    code, output = invoke("monitor", "prune", "iris", "--older-than", "soon", "--monitor-dir", str(store.root))
    assert code == 2 and "invalid duration" in output
    (tmp_path / "bad.csv").write_text("id,truth\n1,2\n")
    code, output = invoke("monitor", "feedback", "iris", str(tmp_path / "bad.csv"), "--monitor-dir", str(store.root))
    assert code == 2 and "needs the columns request_id and label" in output


def test_cli_prune(store: Store, loaded: LoadedModel) -> None:
    log_rows(store, loaded, reference_rows(5), start=time.time() - 40 * 86400)
    log_rows(store, loaded, reference_rows(5))
    code, output = invoke("monitor", "prune", "iris", "--older-than", "30d", "--monitor-dir", str(store.root))
    assert code == 0 and output.startswith("removed 1 day(s) of iris")
    assert store.read("iris").num_rows == 5


def test_labels_files(tmp_path: Path) -> None:
    (tmp_path / "l.jsonl").write_text('{"request_id": "a", "label": 2, "row": 1}\n')
    assert read_labels(tmp_path / "l.jsonl") == [{"request_id": "a", "label": 2, "row": 1}]
    (tmp_path / "l.csv").write_text("request_id,label\n007,setosa\n")
    assert read_labels(tmp_path / "l.csv") == [{"request_id": "007", "label": "setosa"}]


def test_ui_serves_the_dashboard_over_the_store(store: Store, loaded: LoadedModel) -> None:
    from fastapi.testclient import TestClient

    from berth.monitoring.dashboard import create_app

    log_rows(store, loaded, np.asarray(reference_rows(50)))
    with TestClient(create_app(store)) as client:
        assert "berth monitoring" in client.get("/").text
        overview = client.get("/dashboard/api/overview").json()
        assert [m["name"] for m in overview["models"]] == ["iris"] and overview["models"][0]["versions"] == ["v1"]
        data = client.get("/dashboard/api/report", params={"model": "iris", "window": "1h"}).json()
        assert data["report"]["rows"] == 50 and data["plots"]["drift"].startswith("<svg")
        assert client.get("/dashboard/api/report", params={"model": "iris", "window": "x"}).status_code == 400


def test_check_exit_codes_are_distinct_and_json(shifted_store: Store, tmp_path: Path, loaded: LoadedModel) -> None:
    """0 fine, 1 failed, 3 nothing to judge (unknown model, empty window); --json says the same."""
    root = str(shifted_store.root)
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", root, "--dataset-share", "0.2", "--json")
    verdict = json.loads(output)
    assert code == 1 and verdict["status"] == "failed" and verdict["exit_code"] == 1
    assert verdict["dataset_drift"] and verdict["drifted_features"] == ["petal length (cm)"]
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", root, "--json")
    assert (code, json.loads(output)["status"]) == (0, "ok")
    code, output = invoke("monitor", "check", "nobody", "--monitor-dir", root, "--json")
    assert (code, json.loads(output)["status"]) == (3, "no_data")
    code, output = invoke("monitor", "check", "nobody", "--monitor-dir", str(tmp_path / "empty"))
    assert code == 3 and output.startswith("NO DATA") and "no monitoring data for model 'nobody'" in output
    old = Store(tmp_path / "old")
    log_rows(old, loaded, reference_rows(5), start=time.time() - 3 * 86400)
    code, output = invoke("monitor", "check", "iris", "--monitor-dir", str(old.root), "--since", "1h")
    assert code == 3 and "no predictions logged since" in output
