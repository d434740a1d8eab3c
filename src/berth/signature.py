"""Input and output schema of a model, inferred from sample data.

Three input layouts cover the models berth serves:

* ``table``: rows of named columns (a DataFrame, a 2-D array, records); the common case;
* ``column``: one named column handed to the model as a 1-D array (e.g. a text pipeline taking strings);
* ``tensor``: an n-dimensional array of one dtype with a fixed shape after the batch axis (images, sequences).

Turning a request into what the model expects lives in :mod:`berth.coercion`; inferring a signature from sample
data lives in :mod:`berth.signature_inference`. This module imports neither numpy nor pandas, so reading a
manifest (registry, packing, ``berth inspect``) stays light.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from berth.imported import imported_attribute

Layout = Literal["table", "column", "tensor"]
OutputKind = Literal["classification", "regression", "tensor"]

NUMERIC_DTYPES = {"float64", "float32", "float16", "int64", "int32", "int16", "int8",
                  "uint64", "uint32", "uint16", "uint8"}


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


def json_ready(value: Any) -> Any:
    """Numpy scalars and arrays to plain Python; NaN to None, so examples are valid JSON.

    numpy and pandas are looked up among the modules already imported: a value of theirs cannot exist otherwise,
    and importing them here would make every manifest read pay for them.
    """
    ndarray, generic = imported_attribute("numpy", "ndarray"), imported_attribute("numpy", "generic")
    if ndarray is not None and isinstance(value, ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if generic is not None and isinstance(value, generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    timestamp = imported_attribute("pandas", "Timestamp")
    if timestamp is not None and isinstance(value, timestamp):
        return value.isoformat()
    return value
