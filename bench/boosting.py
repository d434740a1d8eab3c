"""Prediction latency of the boosting flavors next to the library's own wrapper, on one row and on 1,000 rows.

    .venv/bin/python -m bench.boosting [--repeats 200] [--output bench/results/boosting.md]

For XGBoost, LightGBM and CatBoost, an iris classifier of 100 trees is fitted with the library's defaults (every
core), saved with ``berth.save`` and loaded back. Timed, alternating call by call so that a busy machine slows all
alike: the fitted wrapper's ``predict_proba`` on a DataFrame (the baseline, as a notebook calls it), berth's
``predict_proba`` from the bundle with its defaults (a matrix, one thread) on prepared input and on JSON-like
records (signature check and coercion included), and the same bundle saved with ``threads=0`` (every core). The
table gives median microseconds per call and each median's ratio to the baseline's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "boosting.md"


def fit(library: str, X: Any, y: Any) -> Any:
    if library == "xgboost":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=100, max_depth=4).fit(X, y)
    if library == "lightgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=100, verbose=-1).fit(X, y)
    import catboost

    return catboost.CatBoostClassifier(iterations=100, depth=4, verbose=False, allow_writing_files=False).fit(X, y)


def timed(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():
        call()  # warm-up
    for _ in range(repeats):
        for name, call in cases.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) * 1e6 for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import pandas as pd
    from sklearn.datasets import load_iris

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    big = pd.concat([X] * 7, ignore_index=True).head(1000)
    lines = ["# Boosting flavors: prediction latency against the library's wrapper", "",
             f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, {os.cpu_count()} cores, "
             f"load average {os.getloadavg()[0]:.1f} at the start; {args.repeats} alternating calls per case (a tenth "
             "of that for 1,000 rows); median microseconds per call (ratio to the wrapper's).", "",
             "| library | rows | wrapper, DataFrame | berth, prepared | berth, records | berth threads=0, prepared |",
             "| --- | --- | --- | --- | --- | --- |"]
    with tempfile.TemporaryDirectory() as scratch:
        for library in ("xgboost", "lightgbm", "catboost"):
            try:
                model = fit(library, X, y)
            except ImportError:
                lines.append(f"| {library} | not installed | | | | |")
                continue
            berth.save(model, f"{scratch}/{library}", sample=X.head())
            berth.save(model, f"{scratch}/{library}-all", sample=X.head(), threads=0)
            loaded, every_core = berth.load(f"{scratch}/{library}"), berth.load(f"{scratch}/{library}-all")
            for rows in (X.head(1), big):
                records = rows.to_dict(orient="records")
                prepared, prepared_all = loaded.prepare(records), every_core.prepare(records)
                medians = timed({
                    "wrapper": lambda m=model, r=rows: m.predict_proba(r),
                    "prepared": lambda b=loaded, p=prepared: b.predict_proba_prepared(p),
                    "records": lambda b=loaded, r=records: b.predict_proba(r),
                    "all": lambda b=every_core, p=prepared_all: b.predict_proba_prepared(p),
                }, args.repeats if len(rows) == 1 else max(args.repeats // 10, 5))
                base = medians["wrapper"]
                cells = [f"{medians[k]:,.0f} ({medians[k] / base:.2f})" for k in ("wrapper", "prepared", "records",
                                                                                   "all")]
                lines.append(f"| {library} | {len(rows)} | " + " | ".join(cells) + " |")
                print(lines[-1], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
