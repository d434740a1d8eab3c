"""Train a scaled ridge regression on scikit-learn's bundled diabetes data and save it as a berth bundle.

    python examples/diabetes/train.py [OUTPUT_DIR]    # default: out/diabetes

Nothing is downloaded: the data ships with scikit-learn.
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_diabetes
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import berth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="out/diabetes",
                        help="bundle directory or URL (default: out/diabetes)")
    args = parser.parse_args(argv)

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=42)

    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    model.fit(X_train, y_train)
    predictions = model.predict(X_test)
    metrics = {
        "r2": float(r2_score(y_test, predictions)),
        "mae": float(mean_absolute_error(y_test, predictions)),
    }

    berth.save(
        model,
        args.output,
        sample=X_train.head(20),
        reference=X_train,
        name="diabetes",
        metrics=metrics,
        params=model.get_params(),
        overwrite=True,
    )
    print(f"saved the diabetes model to {args.output}")
    print(f"r2 on the held-out quarter: {metrics['r2']:.3f}, mean absolute error: {metrics['mae']:.1f}")


if __name__ == "__main__":
    main()
