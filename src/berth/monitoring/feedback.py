"""Ground truth: true labels joined to logged predictions by request id (and row), whenever they arrive.

One item is ``{"request_id": "...", "label": ...}`` (the request's first row), ``{"request_id": ..., "row": 3,
"label": ...}``, or ``{"request_id": ..., "label": [...]}`` with one label per row of the request. Labels are
kept as text (``1``, ``1.0`` and ``"1"`` are one class; regressors' labels are read back as numbers); a label
sent again for the same row replaces the earlier one.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa

from berth.errors import RequestError, UsageError
from berth.monitoring.store import FEEDBACK, Store

MAX_ID_LENGTH = 200
MAX_ROW = 2**31 - 1  # rows are stored as int32


def feedback_table(items: Any, received: dt.datetime | None = None) -> pa.Table:
    """Validated feedback items (one object or a list) as a table; raises RequestError naming each fault."""
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise RequestError("feedback must be an object {request_id, label} or a non-empty list of them",
                           [{"loc": ["body"], "msg": "expected an object or a list of objects"}])
    ids, rows, labels, details = [], [], [], []
    for index, item in enumerate(items):
        where = ["body", index] if len(items) > 1 else ["body"]
        if not isinstance(item, dict):
            details.append({"loc": where, "msg": "expected an object"})
            continue
        request_id, label, row = item.get("request_id"), item.get("label"), item.get("row", 0)
        if not isinstance(request_id, str) or not request_id or len(request_id) > MAX_ID_LENGTH:
            details.append({"loc": [*where, "request_id"], "msg": "expected a non-empty string"})
            continue
        values = label if isinstance(label, list) else [label]
        if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW - len(values):
            details.append({"loc": [*where, "row"], "msg": f"expected an integer from 0 to {MAX_ROW}"})
            continue
        if not values or any(v is None or isinstance(v, dict | list) for v in values):
            details.append({"loc": [*where, "label"], "msg": "expected a value or a list of values"})
            continue
        for offset, value in enumerate(values):
            ids.append(request_id)
            rows.append(row + offset)
            labels.append(str(value).lower() if isinstance(value, bool) else str(value))
    if details:
        raise RequestError(f"invalid feedback: {len(details)} problem(s)", details[:50])
    when = received or dt.datetime.now(dt.UTC)
    return pa.table({
        "time": pa.array([when] * len(ids), pa.timestamp("us", tz="UTC")),
        "request_id": pa.array(ids, pa.string()),
        "row": pa.array(rows, pa.int32()),
        "label": pa.array(labels, pa.string()),
    })


def record_feedback(store: Store, model: str, items: Any) -> int:
    """Store the labels of ``items`` for ``model``; returns how many were stored."""
    table = feedback_table(items)
    store.write(model, table, kind=FEEDBACK)
    return table.num_rows


def read_labels(path: str | Path) -> list[dict[str, Any]]:
    """Feedback items from a CSV, Parquet or JSON Lines file with columns request_id, label (and maybe row)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path, dtype={"request_id": str})
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        frame = pd.read_json(path, lines=suffix != ".json", dtype={"request_id": str})
    else:
        raise UsageError(f"cannot read labels from {path.name}: use .csv, .parquet or .jsonl")
    missing = {"request_id", "label"} - set(frame.columns)
    if missing:
        raise UsageError(f"{path.name} needs the columns request_id and label; missing: {', '.join(sorted(missing))}")
    columns = ["request_id", "label", *(["row"] if "row" in frame.columns else [])]
    records = frame[columns].to_dict("records")
    for record in records:
        record["request_id"] = str(record["request_id"])
        if hasattr(record["label"], "item"):
            record["label"] = record["label"].item()
        if "row" in record:
            record["row"] = int(record["row"])
    return records
