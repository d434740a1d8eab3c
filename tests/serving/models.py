"""Small real models with behaviours the serving tests need (slow, failing)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class SlowModel:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def predict(self, data: Any) -> np.ndarray:
        time.sleep(self.seconds)
        return np.zeros(len(data))


class FailsOnNegative:
    """Raises inside predict when a row's first value is negative: a model error, not an input error."""

    def predict(self, data: Any) -> np.ndarray:
        array = np.asarray(data, dtype=float)
        if (array[:, 0] < 0).any():
            raise ValueError("negative input breaks this model")
        return array[:, 0] * 2


class HangsOnMarker:
    """Predicts zeros; while the file ``marker`` exists, a predict call writes its pid to ``marker.pid`` and
    blocks until ``marker.release`` exists (forever, if nobody creates it: a model stuck in native code)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def predict(self, data: Any) -> np.ndarray:
        import os

        if os.path.exists(self.marker):
            with open(self.marker + ".pid", "w") as out:
                out.write(str(os.getpid()))
            while not os.path.exists(self.marker + ".release"):
                time.sleep(0.05)
        return np.zeros(len(data))
