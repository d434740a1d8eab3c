"""The --on-fail command of `berth monitor check`: retrain on the window's labelled inputs, register the new
version and put it beside production as a shadow.

    berth monitor check wine --since 1h --on-fail "python examples/retraining/retrain.py"

It reads BERTH_CHECK_INPUTS and BERTH_CHECK_LABELS (Parquet files of the window's logged inputs and their
labels), joins them on (request_id, row), trains the same pipeline on them, saves and registers the bundle, and
sets `berth rollout set wine --candidate N --shadow`: servers following wine@production start shadowing it on
their next poll. Promotion is left to the gate (berth promote).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.model_selection import cross_val_score

import berth
from berth.registry import Registry

sys.path.insert(0, str(Path(__file__).parent))
from wine import pipeline


def main() -> int:
    model_name = os.environ["BERTH_CHECK_MODEL"]
    print(f"retraining {model_name} (version {os.environ['BERTH_CHECK_VERSION']} failed its check: "
          f"{os.environ['BERTH_CHECK_FAILED'].splitlines()[0]})")
    inputs = pd.read_parquet(os.environ["BERTH_CHECK_INPUTS"])
    labels = pd.read_parquet(os.environ["BERTH_CHECK_LABELS"])
    joined = inputs.merge(labels, on=["request_id", "row"])
    if len(joined) < 50:
        print(f"only {len(joined)} labelled rows in the window: not retraining")
        return 3
    features = [c for c in inputs.columns if c not in ("request_id", "row", "time", "version", "prediction")]
    X, y = joined[features], joined["label"].astype(int)
    model = pipeline()
    accuracy = float(cross_val_score(model, X, y, cv=5).mean())
    model.fit(X, y)
    bundle = Path(tempfile.mkdtemp(prefix="wine-retrained-")) / "bundle"
    berth.save(model, bundle, sample=X.head(20), reference=X, name=model_name,
               metrics={"accuracy": round(accuracy, 4)}, tags={"trained_on": f"{len(X)} logged rows"})
    registry = Registry()
    version = registry.register(bundle, model_name)
    registry.set_rollout(model_name, version.version, shadow=1.0)
    print(f"registered {model_name} version {version.version} (cross-validated accuracy {accuracy:.3f} on "
          f"{len(X)} rows) and set it as production's shadow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
