"""The data of the retraining example: scikit-learn's wine dataset, and the drift the served model meets.

After deployment a new laboratory starts sending measurements: it reports proline and colour intensity on
another scale (x0.3 and x0.4), with a little measurement noise on every feature. The classes are the same wines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

MODEL = "wine"


def original() -> tuple[pd.DataFrame, pd.Series]:
    X, y = load_wine(return_X_y=True, as_frame=True)
    X.columns = [c.replace("/", "_") for c in X.columns]  # od280/od315_of_diluted_wines: a plain name
    return X, y


def drifted(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """``n`` rows as the new laboratory measures them, with their true classes."""
    X, y = original()
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(X), n)
    rows, labels = X.iloc[index].reset_index(drop=True), y.iloc[index].reset_index(drop=True)
    rows["proline"] *= 0.3
    rows["color_intensity"] *= 0.4
    return rows * rng.normal(1.0, 0.03, rows.shape), labels


def pipeline() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
