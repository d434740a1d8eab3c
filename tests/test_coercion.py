"""Request-shaped input to model input, and the precise errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from berth.coercion import coerce
from berth.errors import SignatureError
from berth.signature import ColumnSpec, OutputSpec, Signature, TensorSpec

OUT = OutputSpec("regression", "float64")
NUMERIC = Signature("table", OUT, (ColumnSpec("a", "float64"), ColumnSpec("b", "float64"),
                                   ColumnSpec("n", "int64")))
MIXED = Signature("table", OUT, (ColumnSpec("age", "float64", nullable=True), ColumnSpec("city", "string"),
                                 ColumnSpec("member", "bool")))


def details(signature: Signature, data: object) -> list[dict[str, object]]:
    with pytest.raises(SignatureError) as caught:
        coerce(signature, data)
    return caught.value.details


@pytest.mark.parametrize(
    "data",
    [
        [1.0, 2.0, 3],
        [[1.0, 2.0, 3]],
        np.array([[1.0, 2.0, 3.0]]),
        {"a": 1.0, "b": 2.0, "n": 3},
        {"a": [1.0], "b": [2.0], "n": [3]},
        [{"a": 1.0, "b": 2.0, "n": 3}],
        pd.DataFrame({"b": [2.0], "n": [3], "a": [1.0]}),
    ],
    ids=["flat-row", "rows", "ndarray", "record", "columns", "records", "dataframe-reordered"],
)
def test_every_input_shape_gives_the_same_frame(data: object) -> None:
    frame = coerce(NUMERIC, data)
    assert list(frame.columns) == ["a", "b", "n"]
    assert frame.to_numpy().tolist() == [[1.0, 2.0, 3.0]]
    assert frame["n"].dtype == np.int64


def test_ndarray_target_keeps_column_order_and_dtype() -> None:
    array = coerce(NUMERIC, [{"n": 3, "b": 2.0, "a": 1.0}], to="ndarray", dtype="float32")
    assert array.dtype == np.float32
    assert array.tolist() == [[1.0, 2.0, 3.0]]


def test_wrong_row_width_names_the_row() -> None:
    assert details(NUMERIC, [[1.0, 2.0, 3], [1.0, 2.0]]) == [{"loc": [1], "msg": "expected 3 values, got 2"}]


def test_wrong_type_names_row_and_field() -> None:
    found = details(NUMERIC, [[1.0, 2.0, 3], [1.0, "abc", 3]])
    assert found == [{"loc": [1, "b"], "msg": "expected a number, got string 'abc'"}]


def test_numeric_strings_are_not_numbers() -> None:
    assert details(NUMERIC, [{"a": "1.5", "b": 2.0, "n": 3}])[0]["loc"] == [0, "a"]


def test_missing_and_unknown_fields_in_records() -> None:
    found = details(NUMERIC, [{"a": 1.0, "b": 2.0, "n": 1}, {"a": 1.0, "n": 1, "c": 5}])
    assert {"loc": [1, "b"], "msg": "field is required"} in found
    assert {"loc": [1, "c"], "msg": "unknown field"} in found
    assert len(found) == 2


def test_missing_and_unknown_columns() -> None:
    found = details(NUMERIC, {"a": [1.0], "b": [2.0], "z": [1]})
    assert {"loc": ["n"], "msg": "column is required"} in found
    assert {"loc": ["z"], "msg": "unknown column"} in found


def test_nan_and_infinity_are_refused_where_the_signature_forbids_them() -> None:
    found = details(NUMERIC, [[math.nan, math.inf, 1]])
    assert {"loc": [0, "a"], "msg": "missing value (null/NaN) is not allowed"} in found
    assert {"loc": [0, "b"], "msg": "infinite value is not allowed"} in found
    assert details(NUMERIC, [[None, 1.0, 1]]) == [{"loc": [0, "a"], "msg": "missing value (null/NaN) is not allowed"}]


def test_integer_column_refuses_fractions() -> None:
    assert details(NUMERIC, [[1.0, 2.0, 2.5]]) == [{"loc": [0, "n"], "msg": "expected an integer, got 2.5"}]


def test_empty_batch_is_an_error() -> None:
    for empty in ([], {"a": [], "b": [], "n": []}, np.empty((0, 3))):
        assert details(NUMERIC, empty)[0]["msg"].startswith("empty input")


def test_unsupported_type_is_an_error() -> None:
    assert "expected rows, records or columns" in details(NUMERIC, 42)[0]["msg"]


def test_row_offset_shifts_reported_rows() -> None:
    with pytest.raises(SignatureError) as caught:
        coerce(NUMERIC, [[1.0, 2.0, 3], [1.0, "x", 3]], row_offset=1000)
    assert caught.value.details[0]["loc"] == [1001, "b"]
    assert "row 1001, field 'b'" in caught.value.message


def test_mixed_columns_are_checked_per_type() -> None:
    frame = coerce(MIXED, [{"age": None, "city": "Oslo", "member": 1}, {"age": 30, "city": "Rome", "member": False}])
    assert frame["member"].tolist() == [True, False]
    assert math.isnan(frame["age"][0]) and frame["age"][1] == 30.0
    found = details(MIXED, [{"age": 1, "city": 7, "member": "yes"}])
    assert {"loc": [0, "city"], "msg": "expected a string, got int 7"} in found
    assert {"loc": [0, "member"], "msg": "expected true or false, got string 'yes'"} in found


def test_many_problems_are_capped_but_counted() -> None:
    with pytest.raises(SignatureError) as caught:
        coerce(NUMERIC, [["x", "y", "z"]] * 40)
    assert len(caught.value.details) == 50
    assert "120 problems" in caught.value.message


def test_column_layout_takes_a_flat_list() -> None:
    texts = Signature("column", OUT, (ColumnSpec("text", "string"),))
    assert coerce(texts, ["free money", "hello"]).tolist() == ["free money", "hello"]
    assert coerce(texts, "just one").tolist() == ["just one"]
    assert coerce(texts, {"text": ["a"]}).tolist() == ["a"]
    assert details(texts, [1, "a"]) == [{"loc": [0, "text"], "msg": "expected a string, got int 1"}]


def test_tensor_layout_checks_shape_and_adds_a_batch_axis() -> None:
    images = Signature("tensor", OUT, tensor=TensorSpec("float32", (-1, 2, 2)))
    assert coerce(images, [[1, 2], [3, 4]]).shape == (1, 2, 2)
    assert coerce(images, np.zeros((5, 2, 2))).dtype == np.float32
    assert details(images, np.zeros((5, 2, 3))) == [{"loc": [], "msg": "expected shape [-1, 2, 2], got [5, 2, 3]"}]


def test_a_half_imported_pandas_is_not_consulted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another thread may be importing pandas while a request is coerced: the module sits in sys.modules
    without its names yet. Coercion must not touch it (it did, and answered 500: 'partially initialized
    module')."""
    import sys
    import types

    from berth.signature import json_ready

    monkeypatch.setitem(sys.modules, "pandas", types.ModuleType("pandas"))  # half built: no DataFrame, NA
    np.testing.assert_array_equal(coerce(NUMERIC, [[1.0, 2.0, 3]], to="ndarray"), [[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(coerce(NUMERIC, {"a": [1.0], "b": [2.0], "n": [3]}, to="ndarray"), [[1.0, 2.0, 3.0]])
    with pytest.raises(SignatureError, match="a"):
        coerce(NUMERIC, [[None, 2.0, 3]], to="ndarray")
    assert json_ready(np.float64(1.5)) == 1.5
