"""What a report tells a user beyond the numbers: labels that match nothing, a missing drift baseline,
prediction drift among the drift bars, classes on a categorical axis, plots that read well with one bucket."""

from __future__ import annotations

import json
import time

import numpy as np

from berth.model import LoadedModel
from berth.monitoring import plots
from berth.monitoring.feedback import record_feedback
from berth.monitoring.report import build_report, drift_bars, render_html
from berth.monitoring.store import Store
from tests.monitoring.conftest import log_rows, reference_rows, true_labels


def test_labels_for_unknown_request_ids_are_counted_and_shown(store: Store, loaded: LoadedModel) -> None:
    rows = reference_rows(50, seed=4)
    ids = log_rows(store, loaded, rows)
    items = [{"request_id": i, "label": label} for i, label in zip(ids, true_labels(rows), strict=True)]
    items += [{"request_id": "typo-1", "label": 0}, {"request_id": "typo-2", "label": 1},
              {"request_id": ids[0], "row": 7, "label": 1}]  # a row the request never had
    record_feedback(store, "iris", items)
    report = build_report("iris", store=store)
    performance = report["performance"]
    assert performance["labelled"] == 50 and performance["unmatched"] == 3
    assert performance["unmatched_examples"] == sorted([ids[0], "typo-1", "typo-2"])
    assert any("3 labels match no logged prediction" in line for line in report["summary"])
    assert "id='unmatched'" in render_html(report)


def test_roc_auc_with_probabilities_of_every_request(store: Store, loaded: LoadedModel) -> None:
    rows = reference_rows(60, seed=6)
    ids = log_rows(store, loaded, rows)
    record_feedback(store, "iris", [{"request_id": i, "label": label}
                                    for i, label in zip(ids, true_labels(rows), strict=True)])
    assert build_report("iris", store=store)["performance"]["overall"]["roc_auc"] > 0.9


def test_a_missing_reference_is_explained(store: Store, loaded: LoadedModel) -> None:
    log_rows(store, loaded, reference_rows(30))
    path = store.path("iris", "versions", "v1.json")
    info = json.loads(store.fs.cat_file(path))
    info["reference"] = None
    store.fs.pipe_file(path, json.dumps(info).encode())
    report = build_report("iris", store=store)
    assert report["reference_available"] is False
    assert not any("No drift: all 0 features" in line for line in report["summary"])
    assert any(line.startswith("No drift baseline") and "--reference" in line for line in report["summary"])
    assert "id='no-reference'" in render_html(report)


def test_prediction_drift_is_a_bar_and_classes_are_categories(store: Store, loaded: LoadedModel) -> None:
    log_rows(store, loaded, reference_rows(300, seed=2))
    report = build_report("iris", store=store)
    bars = drift_bars(report)
    assert [b["feature"] for b in bars][-1] == "prediction" and len(bars) == 5
    plot = report["prediction_drift"]["plot"]
    assert "edges" not in plot and plot["categories"] == ["0", "1", "2"]
    assert np.isclose(sum(plot["reference"]), 1) and np.isclose(sum(plot["current"]), 1)


def test_plots_with_one_bucket_draw_bars_and_values(store: Store, loaded: LoadedModel) -> None:
    rows = reference_rows(40, seed=8)
    ids = log_rows(store, loaded, rows, start=time.time() - 60)
    record_feedback(store, "iris", [{"request_id": i, "label": label}
                                    for i, label in zip(ids, true_labels(rows), strict=True)])
    report = build_report("iris", store=store)
    assert len(report["performance"]["buckets"]) == 1 and len(report["traffic"]["buckets"]) == 1
    performance = plots.performance(report["performance"])
    assert performance.count("<g id=\"patch_") >= 3  # the background and one bar per metric
    traffic = plots.traffic(report["traffic"])
    assert "<svg" in traffic and "<svg" in performance
