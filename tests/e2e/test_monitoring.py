"""Monitoring against a real `berth serve`: the issue's proof, and the dashboard in headless Chromium."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from berth.monitoring.store import Store
from support.server_process import ROOT, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def load_example() -> Any:
    path = ROOT / "examples" / "monitoring" / "drift_demo.py"
    spec = importlib.util.spec_from_file_location("drift_demo", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_drift_and_accuracy_end_to_end(tmp_path: Path) -> None:
    """2,000 normal requests: no drift; 2,000 with petal length + 2 std: drift on that feature only, no dataset
    drift under the default rule (1 of 4 features is not above 50 %), dataset drift under a 20 % rule; labels
    30 % wrong: accuracy falls to 70 % of what true labels give."""
    result = load_example().run(tmp_path / "demo")
    normal, shifted = result["normal"], result["shifted"]
    assert normal["rows"] == shifted["rows"] == 2000
    assert normal["drift"]["drifted_features"] == [] and not normal["drift"]["drifted"]
    assert {f["method"] for f in normal["drift"]["features"]} == {"ks"}
    assert shifted["drift"]["drifted_features"] == ["petal length (cm)"]
    assert shifted["drift"]["share"] == 0.25 and not shifted["drift"]["drifted"]
    assert result["strict_rule"]["drift"]["drifted"]
    assert result["accuracy_true_labels"] >= 0.95
    assert result["accuracy_30pct_wrong"] == pytest.approx(0.7 * result["accuracy_true_labels"], abs=0.03)
    assert 'berth_feature_drifted{feature="petal length (cm)",model="iris"} 1.0' in result["metrics"]
    assert 'berth_feature_drifted{feature="sepal width (cm)",model="iris"} 0.0' in result["metrics"]
    assert "berth_prediction_log_dropped_total 0.0" in result["metrics"]
    assert (tmp_path / "demo" / "shifted.html").read_text().count("<svg") >= 7


@pytest.mark.slow
def test_two_workers_write_their_own_files(iris_bundle: Path, tmp_path: Path) -> None:
    server = ServerProcess(str(iris_bundle), "--workers", "2", env={"BERTH_MONITOR_DIR": str(tmp_path)})
    try:
        server.wait_ready()
        server.wait_listening(2)
        with httpx.Client() as client:  # new connections, so the kernel spreads them over both workers
            for i in range(200):
                client.post(server.url + "/predict", json={"features": [5.1, 3.5, 1.4, 0.2]},
                            headers={"x-request-id": f"r{i}", "connection": "close"}).raise_for_status()
    finally:
        server.stop()
    assert server.process.returncode == 0
    store = Store(tmp_path)
    table = store.read("iris")
    assert sorted(table["request_id"].to_pylist()) == sorted(f"r{i}" for i in range(200))
    assert len({Path(f).name.rsplit("-", 2)[1] for f in store.files("iris")}) == 2  # one writer pid per worker


def test_dashboard_in_headless_chromium(iris_bundle: Path, tmp_path: Path) -> None:
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; the dashboard test must run in CI")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); this test fails instead under CI=true")
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" else \
        importlib.import_module("playwright.sync_api")
    server = ServerProcess(str(iris_bundle), "--workers", "1",
                           env={"BERTH_MONITOR_DIR": str(tmp_path / "monitoring"), "BERTH_LOG_FLUSH_INTERVAL_S": "0.2"})
    try:
        server.wait_ready()
        X, _ = load_iris(return_X_y=True)
        rows = X[np.random.default_rng(0).integers(0, len(X), 300)]
        httpx.post(server.url + "/predict", json={"instances": rows.tolist()}).raise_for_status()
        deadline = time.monotonic() + 30
        while not Store(tmp_path / "monitoring").models() and time.monotonic() < deadline:
            time.sleep(0.2)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1600})
                page.goto(server.url + "/dashboard")
                page.wait_for_selector("#drift-plot svg", timeout=30_000)
                assert page.locator(".model-card[data-model='iris']").count() == 1
                assert "serving" in page.locator("#models").inner_text()
                assert "petal length (cm)" in page.locator("#drift-table").inner_text()
                assert page.locator("#feature-plots svg").count() >= 4
                screenshot = tmp_path / "dashboard.png"
                page.screenshot(path=str(screenshot), full_page=True)
            finally:
                browser.close()
    finally:
        server.stop()
    assert screenshot.stat().st_size > 10_000
    print(f"dashboard screenshot: {screenshot}")


def test_drift_over_time_in_report_and_dashboard_screenshots(iris_bundle: Path, tmp_path: Path) -> None:
    """Twelve hours of traffic with three drifted hours in the middle: the report (opened in Chromium) and the
    dashboard of `berth ui` show the drift-over-time heatmap and when dataset drift began. Screenshots are kept
    in $BERTH_SCREENSHOT_DIR when it is set."""
    import subprocess
    import sys

    import berth
    from support.server_process import BERTH, free_port
    from tests.monitoring.test_timeline import fill

    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; the dashboard test must run in CI")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); this test fails instead under CI=true")
    sync_api = pytest.importorskip("playwright.sync_api") if os.environ.get("CI") != "true" else \
        importlib.import_module("playwright.sync_api")
    from berth.monitoring.report import build_report, render_html

    store = Store(tmp_path / "monitoring")
    fill(store, berth.load(iris_bundle), drifted_hours={7, 6, 5})
    import datetime as dt

    report = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=13), store=store)
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report), encoding="utf-8")
    port = free_port()
    ui = subprocess.Popen([str(BERTH), "ui", "--port", str(port), "--monitor-dir", str(store.root)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    shots = Path(os.environ.get("BERTH_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1600})
                page.goto(page_file.as_uri())
                assert page.locator("#drift-timeline svg").count() == 1
                assert "dataset drift first at" in page.locator("#drift-began").inner_text()
                page.locator("#drift-timeline").screenshot(path=str(shots / "report-drift-over-time.png"))
                page.screenshot(path=str(shots / "report.png"), full_page=True)
                page.goto(f"http://127.0.0.1:{port}/dashboard")
                page.wait_for_selector("#drift-timeline svg", timeout=60_000)
                page.select_option("#window", "24h")
                page.wait_for_function("document.getElementById('drift-began').textContent"
                                       ".includes('dataset drift first at')", timeout=60_000)
                page.locator("#drift-timeline").screenshot(path=str(shots / "dashboard-drift-over-time.png"))
                page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
            finally:
                browser.close()
    finally:
        ui.terminate()
        ui.wait(30)
        if ui.stdout is not None:
            ui.stdout.close()
    for name in ("report-drift-over-time.png", "dashboard-drift-over-time.png"):
        assert (shots / name).stat().st_size > 5_000
    print(f"screenshots in {shots}", file=sys.stderr)
