"""Train version 1 on the original wine data and register it as wine@production.

    python examples/retraining/train_v1.py WORKDIR      (registry: $BERTH_HOME or $BERTH_REGISTRY_URL)
"""

from __future__ import annotations

import sys
from pathlib import Path

from sklearn.model_selection import cross_val_score

import berth
from berth.registry import Registry

sys.path.insert(0, str(Path(__file__).parent))
from wine import MODEL, original, pipeline


def main(workdir: Path) -> int:
    X, y = original()
    model = pipeline()
    accuracy = float(cross_val_score(model, X, y, cv=5).mean())
    model.fit(X, y)
    bundle = workdir / "wine-v1"
    berth.save(model, bundle, sample=X.head(20), reference=X, name=MODEL, metrics={"accuracy": round(accuracy, 4)},
               overwrite=True)
    version = Registry().register(bundle, MODEL, aliases=["production"])
    print(f"registered {MODEL} version {version.version} (cross-validated accuracy {accuracy:.3f}) as production")
    return version.version


if __name__ == "__main__":
    main(Path(sys.argv[1]))
