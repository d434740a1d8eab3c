"""Input and output schema of a model, inferred from sample data.

Three input layouts cover the models berth serves:

* ``table``: rows of named columns (a DataFrame, a 2-D array, records); the common case;
* ``column``: one named column handed to the model as a 1-D array (e.g. a text pipeline taking strings);
* ``tensor``: an n-dimensional array of one dtype with a fixed shape after the batch axis (images, sequences).

Turning a request into what the model expects lives in :mod:`berth.coercion`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from berth.errors import SignatureError

Layout = Literal["table", "column", "tensor"]
OutputKind = Literal["classification", "regression", "tensor"]

NUMERIC_DTYPES = {"float64", "float32", "float16", "int64", "int32", "int16", "int8",
                  "uint64", "uint32", "uint16", "uint8"}
EXAMPLE_ROWS = 3


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    dtype: str  # a numpy dtype name ("float64", "int64", "bool"), "string" or "datetime"
    nullable: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.dtype in NUMERIC_DTYPES

    @property
    def is_integer(self) -> bool:
        return self.dtype.startswith(("int", "uint"))


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]  # -1 marks a free axis (always the batch axis, first)


@dataclass(frozen=True)
class OutputSpec:
    kind: OutputKind
    dtype: str
    shape: tuple[int, ...] = (-1,)
    classes: list[Any] | None = None
    probabilities: bool = False


@dataclass(frozen=True)
class Signature:
    layout: Layout
    outputs: OutputSpec
    columns: tuple[ColumnSpec, ...] = ()
    tensor: TensorSpec | None = None
    example: list[Any] = field(default_factory=list)  # a few input rows, JSON-ready, for docs

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def all_numeric(self) -> bool:
        return bool(self.columns) and all(c.is_numeric for c in self.columns)

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        tensor = data.get("tensor")
        out = dict(data["outputs"])
        out["shape"] = tuple(out.get("shape", (-1,)))
        return cls(
            layout=data["layout"],
            outputs=OutputSpec(**out),
            columns=tuple(ColumnSpec(**c) for c in data.get("columns", [])),
            tensor=TensorSpec(tensor["dtype"], tuple(tensor["shape"])) if tensor else None,
            example=list(data.get("example", [])),
        )


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_drop_none(v) for v in value]
    return value


# --------------------------------------------------------------------------- inference of the input side


def sample_to_frame(sample: Any) -> pd.DataFrame:
    """Turn any tabular sample (DataFrame, 2-D array, records, dict of columns, list of rows) into a DataFrame."""
    if isinstance(sample, pd.DataFrame):
        return sample
    if isinstance(sample, pd.Series):
        return sample.to_frame(name=str(sample.name) if sample.name is not None else "x0")
    if isinstance(sample, dict):
        return pd.DataFrame({str(k): _as_list(v) for k, v in sample.items()})
    if isinstance(sample, list | tuple) and sample and isinstance(sample[0], dict):
        return pd.DataFrame.from_records(list(sample))
    array = np.asarray(sample) if not isinstance(sample, np.ndarray) else sample
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise SignatureError(f"a table needs 2 dimensions, the sample has {array.ndim}")
    return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, np.ndarray | pd.Series):
        return list(value)
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def column_dtype(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_numeric_dtype(dtype):
        if isinstance(dtype, np.dtype):
            return dtype.name
        return str(dtype.numpy_dtype)  # pandas nullable Int64 / Float64
    return "string"


def infer_columns(frame: pd.DataFrame) -> tuple[ColumnSpec, ...]:
    return tuple(
        ColumnSpec(name=str(name), dtype=column_dtype(frame[name]), nullable=bool(frame[name].isna().any()))
        for name in frame.columns
    )


def is_one_dimensional(sample: Any) -> bool:
    """A flat sequence of scalars (e.g. texts for a text pipeline): the ``column`` layout."""
    if isinstance(sample, pd.Series):
        return True
    if isinstance(sample, np.ndarray):
        return sample.ndim == 1
    return isinstance(sample, list | tuple) and bool(sample) and not isinstance(sample[0], list | tuple | dict)


def json_ready(value: Any) -> Any:
    """Numpy scalars and arrays to plain Python; NaN to None, so examples are valid JSON."""
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def infer_input(sample: Any) -> tuple[Layout, tuple[ColumnSpec, ...], TensorSpec | None, list[Any]]:
    """Layout, columns or tensor spec, and a JSON-ready example of a few rows."""
    if isinstance(sample, np.ndarray) and sample.ndim > 2:
        spec = TensorSpec(dtype=sample.dtype.name, shape=(-1, *sample.shape[1:]))
        return "tensor", (), spec, json_ready(sample[:1])
    if is_one_dimensional(sample):
        name = str(sample.name) if isinstance(sample, pd.Series) and sample.name is not None else "input"
        series = pd.Series(list(sample), name=name) if not isinstance(sample, pd.Series) else sample
        column = ColumnSpec(name, column_dtype(series), bool(series.isna().any()))
        return "column", (column,), None, json_ready(list(series.iloc[:EXAMPLE_ROWS]))
    frame = sample_to_frame(sample)
    example = json_ready(frame.head(EXAMPLE_ROWS).to_dict(orient="records"))
    return "table", infer_columns(frame), None, example


def columns_from_model(model: Any) -> tuple[ColumnSpec, ...]:
    """Without a sample: names from ``feature_names_in_``, else ``x0..`` from ``n_features_in_``."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        count = getattr(model, "n_features_in_", None)
        if count is None:
            raise SignatureError(
                "cannot infer the input signature: pass sample= (a few rows of training data); "
                "the model has neither feature_names_in_ nor n_features_in_"
            )
        names = [f"x{i}" for i in range(int(count))]
    return tuple(ColumnSpec(name=str(n), dtype="float64") for n in names)


# --------------------------------------------------------------------------- inference of the output side


def infer_output(predictions: Any, classes: Any = None, probabilities: bool = False) -> OutputSpec:
    array = np.asarray(predictions)
    dtype = "string" if array.dtype.kind in "OUS" else array.dtype.name
    shape = (-1, *array.shape[1:])
    if classes is not None:
        return OutputSpec("classification", dtype, shape, json_ready(list(classes)), probabilities)
    if array.dtype.kind in "fiu" and array.ndim <= 2:
        return OutputSpec("regression", dtype, shape)
    return OutputSpec("tensor", dtype, shape)
