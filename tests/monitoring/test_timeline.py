"""Drift over time: per-bucket drift per feature and for the prediction, when dataset drift began, and
`monitor check --window` judging the latest bucket alone."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
from typer.testing import CliRunner

from berth.cli import app
from berth.model import LoadedModel
from berth.monitoring.report import build_report, render_html
from berth.monitoring.store import Store
from tests.monitoring.conftest import FEATURES, IRIS_X, log_rows, reference_rows

SHIFTED = ["petal length (cm)", "petal width (cm)", "sepal length (cm)"]


def hour_start(hours_ago: int) -> float:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return (now - dt.timedelta(hours=hours_ago)).timestamp() + 60


def fill(store: Store, loaded: LoadedModel, drifted_hours: set[int], hours: int = 12, rows: int = 80) -> None:
    """``hours`` hours of traffic ending now; the hours in ``drifted_hours`` (hours ago) shifted on three features."""
    for hours_ago in range(hours - 1, -1, -1):
        values = reference_rows(rows, seed=hours_ago)
        if hours_ago in drifted_hours:
            for name in SHIFTED:
                values[:, FEATURES.index(name)] += 2 * IRIS_X[name].std()
        log_rows(store, loaded, values, start=hour_start(hours_ago), step=20, prefix=f"h{hours_ago}-")


def test_the_timeline_shows_when_dataset_drift_began(store: Store, loaded: LoadedModel) -> None:
    fill(store, loaded, drifted_hours={7, 6, 5})
    report = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=13), store=store)
    timeline = report["timeline"]
    assert timeline["bucket"] == "1h" and len(timeline["starts"]) == 12
    drifted = [i for i, flag in enumerate(timeline["dataset_drift"]) if flag]
    assert drifted == [4, 5, 6]  # 7, 6 and 5 hours ago, of 11..0 hours ago
    assert timeline["first_drift"] == timeline["starts"][4] and timeline["drift_since"] is None
    assert set(timeline["features"]) == {*FEATURES, "prediction"}
    assert all(timeline["features"][name][4]["drifted"] for name in SHIFTED)
    assert not any(cell["drifted"] for cell in timeline["features"]["sepal width (cm)"])
    assert any(line.startswith("Drift over time: dataset drift in 3 of 12 1h buckets") for line in report["summary"])
    page = render_html(report)
    assert "id='drift-timeline'" in page and "dataset drift first at" in page


def test_check_window_judges_the_latest_bucket(store: Store, loaded: LoadedModel) -> None:
    """Drift in the last hour only: the 12-hour window as a whole passes; --window 1h fails on the latest."""
    fill(store, loaded, drifted_hours={0}, rows=40)
    runner = CliRunner()
    whole = runner.invoke(app, ["monitor", "check", "iris", "--since", "13h", "--monitor-dir", str(store.root)])
    assert whole.exit_code == 0, whole.output
    latest = runner.invoke(app, ["monitor", "check", "iris", "--since", "13h", "--window", "1h", "--json",
                                 "--monitor-dir", str(store.root)])
    verdict = json.loads(latest.output)
    assert latest.exit_code == 1 and verdict["status"] == "failed"
    assert any("latest 1h bucket" in problem for problem in verdict["problems"])
    assert verdict["latest_bucket"]["dataset_drift"] and verdict["drift_since"] == verdict["latest_bucket"]["start"]
    assert sorted(verdict["latest_bucket"]["drifted_features"]) == sorted(SHIFTED)


def test_long_windows_use_daily_buckets(store: Store, loaded: LoadedModel) -> None:
    for days_ago in (6, 3, 0):
        log_rows(store, loaded, reference_rows(30, seed=days_ago), prefix=f"d{days_ago}-",
                 start=(dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago, minutes=5)).timestamp())
    timeline = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(days=7), store=store)["timeline"]
    assert timeline["bucket"] == "1D" and len(timeline["starts"]) == 3
    assert not any(timeline["dataset_drift"]) and np.isfinite(
        [c["severity"] for c in timeline["features"]["prediction"] if c["severity"] is not None]).all()
