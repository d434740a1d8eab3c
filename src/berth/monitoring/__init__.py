"""Monitoring of served models: the prediction log, drift and data quality against the training reference,
performance once labels arrive, reports and the live dashboard.

    from berth.monitoring import Store, build_report, render_html
    report = build_report("iris", since=datetime.now(UTC) - timedelta(hours=24))
    Path("iris.html").write_text(render_html(report))

The names below are imported on first use, so a server importing the prediction log (``berth.monitoring.log``)
does not pay for drift statistics, pandas or reports before it is ready. Heavy parts (scipy, matplotlib,
scikit-learn's metrics) load only when used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from berth.monitoring.drift import (
        DatasetDrift,
        DriftConfig,
        FeatureDrift,
        FeatureRule,
        choose_method,
        dataset_drift,
        feature_drift,
        prediction_drift,
    )
    from berth.monitoring.feedback import read_labels, record_feedback
    from berth.monitoring.log import PendingRecord, PredictionLog
    from berth.monitoring.quality import data_quality
    from berth.monitoring.report import build_report, drift_status, render_html
    from berth.monitoring.scoring import classification_metrics, performance, regression_metrics
    from berth.monitoring.store import Store, monitor_dir, parse_duration
    from berth.monitoring.thresholds import check

_LAZY = {
    "DatasetDrift": "drift",
    "DriftConfig": "drift",
    "FeatureDrift": "drift",
    "FeatureRule": "drift",
    "choose_method": "drift",
    "dataset_drift": "drift",
    "feature_drift": "drift",
    "prediction_drift": "drift",
    "read_labels": "feedback",
    "record_feedback": "feedback",
    "PendingRecord": "log",
    "PredictionLog": "log",
    "classification_metrics": "scoring",
    "performance": "scoring",  # the function; its module is named otherwise, or importing it would shadow the name
    "regression_metrics": "scoring",
    "data_quality": "quality",
    "build_report": "report",
    "drift_status": "report",
    "render_html": "report",
    "Store": "store",
    "monitor_dir": "store",
    "parse_duration": "store",
    "check": "thresholds",
}

__all__ = [
    "DatasetDrift",
    "DriftConfig",
    "FeatureDrift",
    "FeatureRule",
    "PendingRecord",
    "PredictionLog",
    "Store",
    "build_report",
    "check",
    "choose_method",
    "classification_metrics",
    "data_quality",
    "dataset_drift",
    "drift_status",
    "feature_drift",
    "monitor_dir",
    "parse_duration",
    "performance",
    "prediction_drift",
    "read_labels",
    "record_feedback",
    "regression_metrics",
    "render_html",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'berth.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"berth.monitoring.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
