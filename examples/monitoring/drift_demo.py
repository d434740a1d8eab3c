"""Monitoring, end to end: serve the iris model, send normal traffic, then traffic with petal length shifted by
two standard deviations, post labels (30 % of them wrong), and read the reports.

    python examples/monitoring/drift_demo.py [WORK_DIR]     # default: out/monitoring-demo

It trains and saves the model, starts `berth serve` on a free port with its own monitoring directory, and stops
it at the end. Reports are written to WORK_DIR/normal.html, WORK_DIR/shifted.html (and .json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth
from berth.monitoring import DriftConfig, Store, build_report, render_html
from berth.monitoring.report import strip_plots

REQUESTS = 2000
SHIFTED = "petal length (cm)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(bundle: Path, monitor_dir: Path, port: int) -> subprocess.Popen[bytes]:
    berth_command = Path(sys.executable).parent / "berth"
    env = {**os.environ, "BERTH_MONITOR_DIR": str(monitor_dir), "BERTH_LOG_FLUSH_INTERVAL_S": "0.5",
           "BERTH_DRIFT_INTERVAL_S": "1", "BERTH_DRIFT_WINDOW_S": "3600"}
    return subprocess.Popen([str(berth_command), "serve", str(bundle), "--port", str(port), "--workers", "1",
                             "--log-level", "warning"], env=env, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"berth serve exited with {process.returncode}")
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("berth serve did not become ready")


def send(client: httpx.Client, url: str, rows: np.ndarray, prefix: str) -> list[tuple[str, int]]:
    """One request per row, each with its own x-request-id; returns (request id, predicted class)."""
    answers = []
    for index, row in enumerate(rows):
        request_id = f"{prefix}-{index}"
        response = client.post(url + "/predict", json={"features": row.tolist(), "probabilities": True},
                               headers={"x-request-id": request_id})
        response.raise_for_status()
        assert response.headers["x-request-id"] == request_id
        answers.append((request_id, response.json()["predictions"][0]))
    return answers


def wait_logged(store: Store, model: str, rows: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while store.read(model, columns=["time"]).num_rows < rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {rows} predictions logged after {timeout} s")
        time.sleep(0.2)


def run(work: Path) -> dict[str, Any]:
    """The whole scenario; returns the numbers the e2e test checks."""
    work.mkdir(parents=True, exist_ok=True)
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=50, random_state=0).fit(X, y)
    bundle = work / "iris"
    berth.save(model, bundle, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               overwrite=True)
    monitor_dir = work / "monitoring"
    store = Store(monitor_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_server(bundle, monitor_dir, port)
    rng = np.random.default_rng(7)
    try:
        wait_ready(url, process)
        with httpx.Client(timeout=30) as client:
            # 1. traffic drawn from the reference distribution: rows of the training data
            start = dt.datetime.now(dt.UTC)
            picks = rng.integers(0, len(X), REQUESTS)
            normal = send(client, url, X.to_numpy()[picks], "normal")
            middle = dt.datetime.now(dt.UTC)
            # 2. the same, with petal length shifted by two standard deviations
            picks2 = rng.integers(0, len(X), REQUESTS)
            shifted_rows = X.to_numpy()[picks2].copy()
            column = list(X.columns).index(SHIFTED)
            shifted_rows[:, column] += 2 * X[SHIFTED].std()
            send(client, url, shifted_rows, "shifted")
            end = dt.datetime.now(dt.UTC)
            # 3. labels of the normal traffic: first all true, then with 30 % of them wrong
            truth = y.to_numpy()[picks]
            correct = [{"request_id": rid, "label": int(label)} for (rid, _), label in zip(normal, truth, strict=True)]
            client.post(url + "/feedback", json=correct).raise_for_status()
            wait_logged(store, "iris", 2 * REQUESTS)
            accuracy_true = build_report("iris", since=start, until=middle, store=store)["performance"]["overall"]
            wrong = [{"request_id": rid, "label": int(label) if i % 10 >= 3 else int((label + 1) % 3)}
                     for i, ((rid, _), label) in enumerate(zip(normal, truth, strict=True))]
            client.post(url + "/feedback", json=wrong).raise_for_status()
            # 4. the server's own view: drift gauges in /metrics, recomputed every second
            metrics = ""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                metrics = client.get(url + "/metrics").text
                if f'berth_feature_drifted{{feature="{SHIFTED}",model="iris"}} 1.0' in metrics:
                    break
                time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    normal_report = build_report("iris", since=start, until=middle, store=store)
    shifted_report = build_report("iris", since=middle, until=end, store=store)
    strict_rule = build_report("iris", since=middle, until=end, store=store, config=DriftConfig(dataset_share=0.2))
    for name, report in (("normal", normal_report), ("shifted", shifted_report)):
        (work / f"{name}.html").write_text(render_html(report), encoding="utf-8")
        (work / f"{name}.json").write_text(json.dumps(strip_plots(report), indent=1))
    return {"normal": normal_report, "shifted": shifted_report, "strict_rule": strict_rule,
            "accuracy_true_labels": accuracy_true["accuracy"],
            "accuracy_30pct_wrong": normal_report["performance"]["overall"]["accuracy"],
            "metrics": metrics, "work": work}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="?", default="out/monitoring-demo", help="working directory")
    result = run(Path(parser.parse_args(argv).work))
    for name in ("normal", "shifted"):
        drift = result[name]["drift"]
        print(f"{name}: drifted features {drift['drifted_features'] or 'none'}; dataset drift {drift['drifted']} "
              f"(share {drift['share']:.2f}, rule > {drift['threshold']:.2f})")
    print(f"with dataset_share 0.2 the shifted window is dataset drift: {result['strict_rule']['drift']['drifted']}")
    print(f"accuracy with true labels {result['accuracy_true_labels']:.3f}; "
          f"with 30 % wrong labels {result['accuracy_30pct_wrong']:.3f}")
    print(f"reports: {result['work']}/normal.html, {result['work']}/shifted.html")


if __name__ == "__main__":
    main()
