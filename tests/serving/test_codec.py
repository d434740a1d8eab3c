"""JSON encoding of what models return: every numpy layout a predictor may hand back."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from berth.serving.codec import dumps


@pytest.mark.parametrize("array", [
    np.arange(6.0).reshape(2, 3).T,                      # a transposed view (XGBoost's predict_proba)
    np.arange(6.0).reshape(2, 3)[:, ::2],                # a strided slice
    np.arange(3).astype(">i4"),                          # big-endian
    np.arange(3, dtype=np.float16),                      # a dtype orjson does not write
], ids=["transposed", "strided", "big-endian", "float16"])
def test_any_numpy_layout_encodes_as_its_values(array: np.ndarray) -> None:
    encoded = orjson.loads(dumps({"predictions": array, "nested": [array], "scalar": array.flat[0]}))
    assert encoded["predictions"] == array.tolist()
    assert encoded["nested"] == [array.tolist()]
    assert encoded["scalar"] == array.flat[0].item()


def test_what_is_not_data_is_still_refused() -> None:
    with pytest.raises(TypeError):
        dumps({"x": object()})
