"""Save a joblib-dumped scikit-learn model as an MLflow model directory (run inside the MLflow env).

    python mlflow_save.py MODEL.joblib OUT_DIR [MODEL.joblib OUT_DIR ...]

The signature is inferred from iris' feature frame, as ``mlflow.sklearn.save_model`` users do, so the server
takes ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` (or ``inputs`` / ``dataframe_records``).
"""

import shutil
import sys
from typing import Any

import joblib
import mlflow.sklearn
import skops.io
from mlflow.models import infer_signature
from sklearn.datasets import load_iris


def main() -> None:
    pairs = sys.argv[1:]
    if not pairs or len(pairs) % 2:
        sys.exit("usage: mlflow_save.py MODEL.joblib OUT_DIR [MODEL.joblib OUT_DIR ...]")
    X, _ = load_iris(return_X_y=True, as_frame=True)
    for source, out in zip(pairs[::2], pairs[1::2], strict=True):
        save(source, out, X.head(20))


def save(source: str, out: str, sample: Any) -> None:
    model = joblib.load(source)
    # MLflow's default format is skops, which refuses tree models unless their types are trusted at save
    # time; the benchmark made the model itself, so it trusts what skops reports.
    trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
    shutil.rmtree(out, ignore_errors=True)
    mlflow.sklearn.save_model(
        model,
        out,
        signature=infer_signature(sample, model.predict(sample)),
        input_example=sample.head(2),
        skops_trusted_types=trusted or None,
    )


if __name__ == "__main__":
    main()
