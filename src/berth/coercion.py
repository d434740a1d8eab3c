"""Turn request-shaped input into exactly what a model expects, or a :class:`SignatureError` naming each fault.

Accepted shapes for the ``table`` layout: a DataFrame, a 2-D array, a list of rows, a single flat row, a list of
records (dicts), a dict of columns, or a single record (dict of scalars). The fast path (all-numeric rows) is
one ``np.asarray`` and one finiteness check; only input that fails it is examined value by value, to say
which row and which field is wrong.

pandas is imported only when a DataFrame is made (a model that takes one, a date-time column): a server whose
model takes a numeric matrix never imports it. Input values of pandas' types are recognised through
``sys.modules`` (a DataFrame cannot exist before pandas is imported).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from berth.errors import SignatureError
from berth.imported import imported_attribute
from berth.signature import ColumnSpec, Signature

if TYPE_CHECKING:
    import pandas as pd

Target = Literal["dataframe", "ndarray"]
MAX_DETAILS = 50


class _Problems:
    """Collects ``{"loc", "msg"}`` details and raises them together."""

    def __init__(self, row_offset: int = 0) -> None:
        self.details: list[dict[str, Any]] = []
        self.count = 0
        self.row_offset = row_offset

    def add(self, msg: str, row: int | None = None, field: str | None = None) -> None:
        self.count += 1
        if len(self.details) < MAX_DETAILS:
            loc: list[Any] = []
            if row is not None:
                loc.append(row + self.row_offset)
            if field is not None:
                loc.append(field)
            self.details.append({"loc": loc, "msg": msg})

    def raise_if_any(self) -> None:
        if not self.count:
            return
        shown = "; ".join(_describe(d) for d in self.details[:3])
        more = f" (and {self.count - 3} more)" if self.count > 3 else ""
        noun = "problem" if self.count == 1 else "problems"
        raise SignatureError(f"input does not match the model's signature, {self.count} {noun}: {shown}{more}",
                             self.details)


def _describe(detail: dict[str, Any]) -> str:
    loc = detail["loc"]
    parts = [f"row {p}" if isinstance(p, int) else f"field '{p}'" for p in loc]
    return (", ".join(parts) + ": " if parts else "") + detail["msg"]


def _got(value: Any) -> str:
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = "string" if isinstance(value, str) else type(value).__name__
    return f"{kind} {text}"


def coerce(signature: Signature, data: Any, *, to: Target = "dataframe", dtype: str | None = None,
           row_offset: int = 0) -> Any:
    """Validate ``data`` against ``signature`` and return a DataFrame, a 2-D/1-D array, or a tensor."""
    problems = _Problems(row_offset)
    if signature.layout == "tensor":
        return _coerce_tensor(signature, data, problems, dtype)
    if signature.layout == "column":
        column = signature.columns[0]
        values = _column_values(column.name, data, problems)
        problems.raise_if_any()
        result = _check_column(column, values, problems)
        problems.raise_if_any()
        return result
    columns = _table_columns(signature, data, problems)
    problems.raise_if_any()
    if isinstance(columns, np.ndarray):  # fast path: a validated numeric matrix
        if to == "ndarray":
            matrix = checked_cast(columns, dtype or _common_dtype(signature), problems, columns=signature.columns)
            problems.raise_if_any()
            return matrix
        for i, spec in enumerate(signature.columns):  # each column must fit its own dtype (and the model's)
            if spec.dtype != columns.dtype.name and not (spec.is_integer and spec.nullable):
                checked_cast(columns[:, i], spec.dtype, problems, field=spec.name)
            if dtype is not None:
                checked_cast(columns[:, i], dtype, problems, field=spec.name)
        problems.raise_if_any()
        return matrix_to_frame(signature, columns)
    checked = {spec.name: _check_column(spec, columns[spec.name], problems) for spec in signature.columns}
    problems.raise_if_any()
    if dtype is not None and to != "ndarray":  # a DataFrame for a model that casts its input: it must fit too
        for name, values in checked.items():
            checked_cast(np.asarray(values), dtype, problems, field=name)
        problems.raise_if_any()
    if to == "ndarray":
        matrix = checked_cast(np.column_stack([checked[n] for n in signature.names]),
                              dtype or _common_dtype(signature), problems, columns=signature.columns)
        problems.raise_if_any()
        return matrix
    return _pandas().DataFrame(checked, columns=signature.names)


def _pandas() -> Any:
    import pandas

    return pandas


def is_frame(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (without importing pandas)."""
    frame = imported_attribute("pandas", "DataFrame")
    return frame is not None and isinstance(value, frame)


def _is_series(value: Any) -> bool:
    series = imported_attribute("pandas", "Series")
    return series is not None and isinstance(value, series)


def matrix_to_frame(signature: Signature, matrix: np.ndarray) -> pd.DataFrame:
    """A validated numeric matrix as the DataFrame the model expects (names and per-column dtypes)."""
    frame = _pandas().DataFrame(matrix, columns=signature.names, copy=False)
    casts = {c.name: c.dtype for c in signature.columns
             if c.dtype != matrix.dtype.name and not (c.is_integer and c.nullable)}  # gaps stay float
    return frame.astype(casts) if casts else frame


def _common_dtype(signature: Signature) -> str:
    if not signature.all_numeric:
        return "object"
    if any(c.is_integer and c.nullable for c in signature.columns):
        return "float64"
    return np.result_type(*[c.dtype for c in signature.columns]).name


# --------------------------------------------------------------------------- reading the input's shape


def _table_columns(signature: Signature, data: Any, problems: _Problems) -> np.ndarray | dict[str, Any]:
    width = len(signature.columns)
    if is_frame(data):
        return _named_columns(signature, {str(k): data[k].to_numpy() for k in data.columns}, problems)
    if isinstance(data, dict):
        if data and all(not _is_sequence(v) for v in data.values()):
            data = {k: [v] for k, v in data.items()}  # a single record
        return _named_columns(signature, data, problems)
    if isinstance(data, np.ndarray):
        rows: Any = data.reshape(1, -1) if data.ndim == 1 else data
    elif isinstance(data, list | tuple):
        if not data:
            problems.add("empty input: send at least one row")
            return {}
        if isinstance(data[0], dict):
            return _records(signature, data, problems)
        rows = [data] if not _is_sequence(data[0]) else data
    else:
        problems.add(f"expected rows, records or columns, got {type(data).__name__}")
        return {}
    return _rows(signature, rows, width, problems)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, list | tuple | np.ndarray) or _is_series(value)


def _rows(signature: Signature, rows: Any, width: int, problems: _Problems) -> np.ndarray | dict[str, Any]:
    if len(rows) == 0:
        problems.add("empty input: send at least one row")
        return {}
    array: np.ndarray | None = None
    try:
        array = np.asarray(rows) if not isinstance(rows, np.ndarray) else rows
    except OverflowError:  # an integer too large for any numpy type: numpy keeps it as an object
        array = np.asarray(rows, dtype=object)
    except ValueError:  # ragged rows
        array = None
    if array is None or array.ndim != 2 or array.shape[1] != width:
        for i, row in enumerate(rows):
            got = len(row) if _is_sequence(row) else 1
            if got != width:
                problems.add(f"expected {width} values, got {got}", row=i)
        if not problems.count:
            problems.add(f"expected rows of {width} values")
        return {}
    if signature.all_numeric and array.dtype.kind in "biuf":
        _check_matrix(signature, array, problems)
        return array
    if array.dtype.kind in "US" and not isinstance(rows, np.ndarray):
        array = np.asarray(rows, dtype=object)  # numpy turned mixed values into strings: keep the originals
    return {spec.name: array[:, i] for i, spec in enumerate(signature.columns)}


def _check_matrix(signature: Signature, array: np.ndarray, problems: _Problems) -> None:
    """Finiteness and integrality of a numeric matrix, vectorised; per-value work only where a fault is."""
    if array.dtype.kind != "f":
        return
    finite = np.isfinite(array)
    for col, spec in enumerate(signature.columns):
        if spec.is_integer:
            values = array[:, col]
            for row in np.flatnonzero(finite[:, col] & (np.floor(values) != values)):
                problems.add(f"expected an integer, got {values[row].item()!r}", row=int(row), field=spec.name)
    if finite.all():
        return
    for row, col in zip(*np.nonzero(~finite), strict=True):
        spec = signature.columns[col]
        value = array[row, col]
        if np.isnan(value):
            if not spec.nullable:
                problems.add("missing value (null/NaN) is not allowed", row=int(row), field=spec.name)
        else:
            problems.add("infinite value is not allowed", row=int(row), field=spec.name)


def _records(signature: Signature, records: Sequence[Any], problems: _Problems) -> dict[str, Any]:
    known = set(signature.names)
    columns: dict[str, list[Any]] = {name: [] for name in signature.names}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            problems.add(f"expected an object of named fields, got {type(record).__name__}", row=i)
            continue
        for name in signature.names:
            if name in record:
                columns[name].append(record[name])
            else:
                columns[name].append(None)
                problems.add("field is required", row=i, field=name)
        for extra in record.keys() - known:
            problems.add("unknown field", row=i, field=str(extra))
    return columns


def _named_columns(signature: Signature, data: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    known = set(signature.names)
    for name in signature.names:
        if name not in data:
            problems.add("column is required", field=name)
    for extra in data.keys() - known:
        problems.add("unknown column", field=str(extra))
    lengths = {len(v) if _is_sequence(v) else 1 for v in data.values()}
    if len(lengths) > 1:
        problems.add(f"columns differ in length: {sorted(lengths)}")
    if lengths == {0}:
        problems.add("empty input: send at least one row")
    return {k: v if _is_sequence(v) else [v] for k, v in data.items()}


def _column_values(name: str, data: Any, problems: _Problems) -> Any:
    if is_frame(data):
        if name not in data.columns:
            problems.add("column is required", field=name)
            return []
        return data[name].to_numpy()
    if isinstance(data, dict):
        if name not in data:
            problems.add("column is required", field=name)
            return []
        data = data[name]
    if not _is_sequence(data):
        data = [data]
    if len(data) == 0:
        problems.add("empty input: send at least one row")
    return data


# --------------------------------------------------------------------------- checking one column


def _check_column(spec: ColumnSpec, values: Any, problems: _Problems) -> np.ndarray:
    array = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if spec.is_numeric:
        return _check_numeric(spec, array, problems)
    if spec.dtype == "bool":
        return _check_bool(spec, array, problems)
    if spec.dtype == "datetime":
        return _check_datetime(spec, array, problems)
    return _check_string(spec, array, problems)


def _missing(value: Any) -> bool:
    if value is None or (isinstance(value, float) and value != value):
        return True
    na = imported_attribute("pandas", "NA")
    return na is not None and value is na


def _check_numeric(spec: ColumnSpec, array: np.ndarray, problems: _Problems) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        before = problems.count
        for i, value in enumerate(array):
            if _missing(value):
                continue
            if isinstance(value, str | bytes) or not isinstance(value, int | float | np.number | bool):
                problems.add(f"expected a number, got {_got(value)}", row=i, field=spec.name)
        if problems.count > before:
            return array
        array = np.array([np.nan if _missing(v) else v for v in array], dtype="float64")
    if array.dtype.kind == "f":
        nan = np.isnan(array)
        if not spec.nullable:
            for row in np.flatnonzero(nan):
                problems.add("missing value (null/NaN) is not allowed", row=int(row), field=spec.name)
        for row in np.flatnonzero(np.isinf(array)):
            problems.add("infinite value is not allowed", row=int(row), field=spec.name)
        if spec.is_integer:
            fractional = ~nan & (np.floor(array) != array)
            for row in np.flatnonzero(fractional):
                problems.add(f"expected an integer, got {array[row].item()!r}", row=int(row), field=spec.name)
            if nan.any():
                return array  # integers with gaps stay float, as pandas and scikit-learn expect
    return checked_cast(array, spec.dtype, problems, field=spec.name)


def _check_bool(spec: ColumnSpec, array: np.ndarray, problems: _Problems) -> np.ndarray:
    if array.dtype.kind == "b":
        return array
    out = np.empty(len(array), dtype=object)
    for i, value in enumerate(array):
        if _missing(value):
            if not spec.nullable:
                problems.add("missing value (null) is not allowed", row=i, field=spec.name)
            out[i] = None
        elif isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
            out[i] = bool(value)
        else:
            problems.add(f"expected true or false, got {_got(value)}", row=i, field=spec.name)
    return out if spec.nullable else out.astype(bool)


def _check_string(spec: ColumnSpec, array: np.ndarray, problems: _Problems) -> np.ndarray:
    if array.dtype.kind == "U":
        return array.astype(object)
    for i, value in enumerate(array):
        if _missing(value):
            if not spec.nullable:
                problems.add("missing value (null) is not allowed", row=i, field=spec.name)
        elif not isinstance(value, str):
            problems.add(f"expected a string, got {_got(value)}", row=i, field=spec.name)
    return array.astype(object, copy=False)


def _check_datetime(spec: ColumnSpec, array: np.ndarray, problems: _Problems) -> np.ndarray:
    pandas = _pandas()
    parsed = pandas.to_datetime(pandas.Series(array), errors="coerce")
    for i in np.flatnonzero(parsed.isna().to_numpy()):
        value = array[i]
        if not _missing(value):
            problems.add(f"expected a date-time, got {_got(value)}", row=int(i), field=spec.name)
        elif not spec.nullable:
            problems.add("missing value (null) is not allowed", row=int(i), field=spec.name)
    return parsed.to_numpy()


# --------------------------------------------------------------------------- tensors


def _coerce_tensor(signature: Signature, data: Any, problems: _Problems, dtype: str | None) -> np.ndarray:
    spec = signature.tensor
    assert spec is not None
    try:
        array = checked_cast(np.asarray(data), dtype or spec.dtype, problems)
    except (ValueError, TypeError, OverflowError) as exc:
        problems.add(f"expected a {spec.dtype} tensor of shape {list(spec.shape)}: {exc}")
        problems.raise_if_any()
        raise AssertionError("unreachable") from exc
    if array.ndim == len(spec.shape) - 1:
        array = array[np.newaxis, ...]  # one item without its batch axis
    expected = spec.shape[1:]
    if array.ndim != len(spec.shape) or any(e not in (-1, g) for e, g in zip(expected, array.shape[1:],
                                                                                   strict=True)):
        problems.add(f"expected shape {list(spec.shape)}, got {list(array.shape)}")
    elif array.shape[0] == 0:
        problems.add("empty input: send at least one item")
    problems.raise_if_any()
    return array


def checked_cast(array: np.ndarray, dtype: Any, problems: _Problems, field: str | None = None,
                 columns: Sequence[ColumnSpec] | None = None) -> np.ndarray:
    """``array`` as ``dtype``, with each value that does not fit (overflows a float, leaves an integer range)
    reported instead of silently becoming infinity or a wrapped-around number."""
    target = np.dtype(dtype)
    if array.dtype == target or target.kind not in "biuf":
        return array.astype(target, copy=False)
    if array.dtype.kind == "O":
        try:
            array = array.astype("float64")
        except (ValueError, TypeError, OverflowError):
            problems.add(f"expected {target.name} values", field=field)
            return array
    if array.dtype.kind not in "biuf":
        return array.astype(target, copy=False)
    if target.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = array.astype(target)
        bad = np.isfinite(array) & ~np.isfinite(cast) if array.dtype.kind == "f" else ~np.isfinite(cast)
    elif target.kind in "iu":
        info = np.iinfo(target)
        with np.errstate(invalid="ignore"):
            bad = (array < info.min) | (array > info.max)
            cast = array.astype(target) if not bad.any() else array
    else:
        return array.astype(target, copy=False)
    flat = np.flatnonzero(np.asarray(bad).reshape(-1))
    for index in flat[:10]:
        width = array.shape[1] if array.ndim == 2 and field is None else 1
        named = (columns[int(index % width)].name if columns is not None and width > 1 and len(columns) == width
                 else field)
        problems.add(f"value out of range for {target.name}", row=int(index // width), field=named)
    return cast
