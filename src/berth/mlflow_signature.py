"""An MLflow model's signature and saved input example, as the sample berth infers its signature from.

MLflow's column specs (``double``, ``float``, ``long``, ``integer``, ``boolean``, ``string``, ``datetime``)
become berth's column dtypes and ``required: false`` a nullable column; a tensor spec ``[-1, N]`` becomes the
columns ``x0..``. The input example (a DataFrame in split or records orient, or an ndarray) is the sample; without
one, a row made from the signature stands in for it (and the bundle shows no example).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from berth.errors import BundleError, SignatureError

MLMODEL = "MLmodel"
MAX_EXAMPLE_BYTES = 4 << 20
MAX_EXAMPLE_ROWS = 1000
MLFLOW_TYPES = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32", "boolean": "bool",
                "string": "string", "datetime": "datetime"}
Column = tuple[str, str, bool]  # name, berth dtype, nullable


def example_rows(path: Path, info: dict[str, Any]) -> Any:
    """The input example MLflow saved at ``path`` (``saved_input_example_info`` is ``info``) as a DataFrame, or
    None when it is not tabular (a JSON object, an image)."""
    if path.stat().st_size > MAX_EXAMPLE_BYTES:
        raise BundleError(f"the input example {path.name} is larger than {MAX_EXAMPLE_BYTES} bytes")
    try:
        example = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"the input example {path.name} is not valid JSON: {exc}") from exc
    import pandas as pd

    kind = info.get("type")
    if kind == "dataframe":
        if isinstance(example, dict) and "dataframe_split" in example:
            example = example["dataframe_split"]
        if isinstance(example, dict) and isinstance(example.get("data"), list):
            columns = example.get("columns")
            rows = example["data"][:MAX_EXAMPLE_ROWS]
            return pd.DataFrame(rows, columns=columns if isinstance(columns, list) else None)
        if isinstance(example, list) and all(isinstance(r, dict) for r in example):
            return pd.DataFrame.from_records(example[:MAX_EXAMPLE_ROWS])
        raise BundleError(f"the input example {path.name} is not a DataFrame in split or records orient")
    if kind == "ndarray":
        if isinstance(example, dict) and "inputs" in example:
            example = example["inputs"]
        if isinstance(example, list) and example and all(isinstance(r, list) for r in example):
            return pd.DataFrame(example[:MAX_EXAMPLE_ROWS], columns=[f"x{i}" for i in range(len(example[0]))])
    return None  # other example kinds (JSON objects, images) say nothing about a table


def signature_columns(data: dict[str, Any]) -> list[Column] | None:
    """``(name, berth dtype, nullable)`` per input column of the MLflow signature, or None without one."""
    signature = data.get("signature")
    if signature is None:
        return None
    if not isinstance(signature, dict):
        raise SignatureError(f"{MLMODEL}: signature must be a mapping")
    inputs = signature.get("inputs")
    if inputs is None:
        return None
    try:
        specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    except ValueError as exc:
        raise SignatureError(f"{MLMODEL}: signature.inputs is not valid JSON: {exc}") from exc
    if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
        raise SignatureError(f"{MLMODEL}: signature.inputs must be a list of column or tensor specs")
    if len(specs) == 1 and specs[0].get("type") == "tensor":
        tensor = specs[0].get("tensor-spec")
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        dtype = str(tensor.get("dtype")) if isinstance(tensor, dict) else ""
        if not isinstance(shape, list) or len(shape) != 2 or not isinstance(shape[1], int) or shape[1] < 1:
            raise SignatureError(f"{MLMODEL}: berth imports tensor signatures of shape [-1, N] only, not {shape!r}")
        if dtype not in ("float64", "float32", "int64", "int32", "bool"):
            raise SignatureError(f"{MLMODEL}: unsupported tensor dtype {dtype!r}")
        return [(f"x{i}", dtype, False) for i in range(shape[1])]
    columns = []
    for index, spec in enumerate(specs):
        kind = spec.get("type")
        if kind not in MLFLOW_TYPES:
            raise SignatureError(f"{MLMODEL}: signature.inputs[{index}] has type {kind!r}; berth imports "
                                 f"{', '.join(MLFLOW_TYPES)}")
        name = spec.get("name", f"x{index}")
        if not isinstance(name, str) or not name:
            raise SignatureError(f"{MLMODEL}: signature.inputs[{index}].name must be a string")
        columns.append((name, MLFLOW_TYPES[kind], spec.get("required", True) is False))
    return columns


def sample_for(columns: list[Column] | None, example: Any) -> tuple[Any, bool]:
    """A sample frame typed as the MLflow signature says, and whether it was made up (no real example)."""
    import pandas as pd

    if columns is None:
        return example, False
    synthetic = example is None
    if synthetic:
        zero = {"string": "", "bool": False, "datetime": pd.Timestamp(0)}
        example = pd.DataFrame([[zero.get(dtype, 0) for _, dtype, _ in columns]], columns=[c[0] for c in columns])
    missing = [name for name, _, _ in columns if name not in example.columns]
    if missing and len(example.columns) == len(columns):
        example = example.set_axis([c[0] for c in columns], axis=1)
    elif missing:
        raise SignatureError(f"the input example lacks the signature's columns {', '.join(missing)}")
    frame = example[[name for name, _, _ in columns]].copy()
    for name, dtype, _ in columns:
        if dtype == "datetime":
            frame[name] = pd.to_datetime(frame[name])
        elif dtype != "string":
            frame[name] = frame[name].astype(dtype)
    return frame, synthetic
