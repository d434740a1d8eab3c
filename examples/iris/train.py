"""Train a random forest on scikit-learn's bundled iris data and save it as a berth bundle.

    python examples/iris/train.py [OUTPUT_DIR]    # default: out/iris

Nothing is downloaded: the data ships with scikit-learn.
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split

import berth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", default="out/iris",
                        help="bundle directory or URL (default: out/iris)")
    args = parser.parse_args(argv)

    X, y = load_iris(return_X_y=True, as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)

    model = RandomForestClassifier(n_estimators=100, random_state=0)
    model.fit(X_train, y_train)
    accuracy = float(accuracy_score(y_test, model.predict(X_test)))

    berth.save(
        model,
        args.output,
        sample=X_train.head(20),
        reference=X_train,
        name="iris",
        metrics={"accuracy": accuracy},
        params=model.get_params(),
        overwrite=True,
    )
    print(f"saved the iris model to {args.output}")
    print(f"accuracy on the held-out quarter: {accuracy:.3f}")


if __name__ == "__main__":
    main()
