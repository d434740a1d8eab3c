"""Monitoring of served models: the prediction log, drift and data quality against the training reference,
performance once labels arrive, reports and the live dashboard.

    from berth.monitoring import Store, build_report, render_html
    report = build_report("iris", since=datetime.now(UTC) - timedelta(hours=24))
    Path("iris.html").write_text(render_html(report))

Heavy parts (scipy, matplotlib, scikit-learn's metrics) load only when used.
"""

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
from berth.monitoring.performance import classification_metrics, performance, regression_metrics
from berth.monitoring.quality import data_quality
from berth.monitoring.report import build_report, drift_status, render_html
from berth.monitoring.store import Store, monitor_dir, parse_duration
from berth.monitoring.thresholds import check

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
