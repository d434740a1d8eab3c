"""SageMaker's side of ``POST /invocations``: headerless CSV, JSON Lines, and answers in the format asked for.

SageMaker batch transform splits its input by line and sends CSV without a header, or JSON Lines, and its
containers answer in the format of the ``Accept`` header. So:

- **CSV** (``text/csv``): the first line is a header only when its fields are exactly the signature's column
  names (in any order); otherwise every line is a row of values in the signature's column order.
- **JSON Lines** (``application/jsonlines``): one row per line, as a JSON array of values, a record
  (``{"column": value, ...}``) or SageMaker's ``{"features": [...]}``. Blank lines are skipped.
- **Accept**: ``application/json`` (and ``*/*``, or no header) gives ``{"predictions": [...]}``; ``text/csv``
  one prediction per line (a row of probabilities or values comma-separated); ``application/jsonlines`` one JSON
  value per line. Any other Accept gets 406 naming these.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from starlette.responses import Response

from berth.errors import NotAcceptableError, RequestError
from berth.serving.codec import dumps
from berth.signature import Signature

JSONLINES_TYPES = {"application/jsonlines", "application/jsonl", "application/x-jsonlines", "application/json-lines"}
CSV_TYPES = {"text/csv", "application/csv"}
ANSWERS = {"application/json": "json", "text/csv": "csv", "application/jsonlines": "jsonlines",
           "application/jsonl": "jsonlines", "application/x-jsonlines": "jsonlines", "*/*": "json",
           "application/*": "json", "text/*": "csv"}
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "jsonlines": "application/jsonlines"}


# ---------------------------------------------------------------------------------------------- requests


def _first_line(body: bytes) -> list[str]:
    end = body.find(b"\n")
    line = (body if end < 0 else body[:end]).decode("utf-8-sig", errors="replace").rstrip("\r")
    return [field.strip() for field in next(csv.reader([line]), [])]


def read_csv(body: bytes, signature: Signature) -> Any:
    """A table of the signature's columns from CSV with or without a header line."""
    import pandas as pd

    names = signature.names
    has_header = sorted(_first_line(body)) == sorted(names)
    try:
        frame = pd.read_csv(io.BytesIO(body), header=0 if has_header else None, skipinitialspace=True,
                            skip_blank_lines=True, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise RequestError("empty CSV body: send one row per line", [{"loc": ["body"], "msg": "empty"}]) from None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RequestError(f"body is not a readable CSV table: {exc}", [{"loc": ["body"], "msg": str(exc)}]) from exc
    if has_header:
        return frame
    if frame.shape[1] != len(names):
        raise RequestError(
            f"CSV rows have {frame.shape[1]} fields, the model takes {len(names)} columns ({', '.join(names)}); "
            "a first line is read as a header only when it names exactly these columns",
            [{"loc": ["body", 0], "msg": f"expected {len(names)} fields, got {frame.shape[1]}"}])
    frame.columns = names
    return frame


def read_jsonlines(body: bytes, signature: Signature) -> list[Any]:
    """The rows (lists or records) of a JSON Lines body; records among lists become lists in column order."""
    rows: list[Any] = []
    for number, line in enumerate(body.split(b"\n")):
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise RequestError(f"line {number + 1} is not valid JSON: {exc}",
                               [{"loc": ["body", number], "msg": str(exc)}]) from exc
        if isinstance(value, dict) and value.keys() == {"features"}:
            value = value["features"]
        if not isinstance(value, list | dict):
            raise RequestError(f"line {number + 1}: expected a JSON array of values or an object of columns",
                               [{"loc": ["body", number], "msg": "expected an array or an object"}])
        rows.append(value)
    if not rows:
        raise RequestError("empty JSON Lines body: send one row per line", [{"loc": ["body"], "msg": "empty"}])
    if any(isinstance(row, list) for row in rows) and any(isinstance(row, dict) for row in rows):
        return [_as_list(row, signature.names, number) if isinstance(row, dict) else row
                for number, row in enumerate(rows)]
    return rows


def _as_list(record: dict[str, Any], names: list[str], number: int) -> list[Any]:
    unknown = sorted(record.keys() - set(names))
    if unknown:
        raise RequestError(f"row {number}: unknown column {unknown[0]!r}; the columns are {', '.join(names)}",
                           [{"loc": ["body", number, key], "msg": "unknown column"} for key in unknown])
    return [record.get(name) for name in names]


# ---------------------------------------------------------------------------------------------- answers


def answer_format(accept: str | None) -> str:
    """``json``, ``csv`` or ``jsonlines`` for an Accept header (best quality first); 406 when none fits."""
    if accept is None or not accept.strip():
        return "json"
    ranges = []
    for position, part in enumerate(accept.split(",")):
        kind, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((-quality, position, kind.lower()))
    for negative_quality, _, kind in sorted(ranges):
        if negative_quality < 0 and kind in ANSWERS:
            return ANSWERS[kind]
    raise NotAcceptableError(f"cannot answer in {accept}: berth answers application/json, text/csv or "
                             "application/jsonlines",
                             [{"loc": ["header", "accept"], "msg": f"not available: {accept}"}])


def _rows(predictions: Any) -> list[Any]:
    return predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)


def encode(predictions: Any, fmt: str) -> Response:
    """The predictions in ``fmt`` (see :func:`answer_format`)."""
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        for row in _rows(predictions):
            writer.writerow(row if isinstance(row, list) else [row])
        return Response(text.getvalue(), media_type="text/csv")
    if fmt == "jsonlines":
        body = b"".join(dumps(row) + b"\n" for row in _rows(predictions))
        return Response(body, media_type=MEDIA_TYPES["jsonlines"])
    return Response(dumps({"predictions": _rows(predictions)}), media_type="application/json")
