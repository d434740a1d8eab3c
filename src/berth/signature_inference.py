"""A model's signature inferred from data: the input side from sample rows, the output side from predictions.

Only saving needs this (and with it numpy and pandas); reading a signature needs :mod:`berth.signature` alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from berth.errors import SignatureError
from berth.signature import ColumnSpec, Layout, OutputSpec, TensorSpec, json_ready

EXAMPLE_ROWS = 3

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
