"""Candidates that misbehave on purpose after their warm-up call (a shadow's failures must stay its own)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class Misbehaving:
    """Answers like ``model`` on its first call (the warm-up); then fails (``mode="fail"``) or sleeps
    ``seconds`` before answering (``mode="slow"``)."""

    def __init__(self, model: Any, mode: str, seconds: float = 0.0) -> None:
        self.model = model
        self.mode = mode
        self.seconds = seconds
        self.calls = 0

    def predict(self, data: Any) -> np.ndarray:
        self.calls += 1
        if self.calls > 1:
            if self.mode == "fail":
                raise RuntimeError("this candidate is broken")
            time.sleep(self.seconds)
        return np.asarray(self.model.predict(data))
