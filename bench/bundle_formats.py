"""Bundle size, save time and load time of the iris forest in each payload format, side by side.

    .venv/bin/python bench/bundle_formats.py [--trees 100] [--runs 15] [--output bench/results/bundle_formats.md]

For each format the same RandomForestClassifier is saved with ``berth.save`` and loaded with ``berth.load``
(sha256 verification and version check included) ``--runs`` times; the table gives medians and each format's
ratio to skops, the default. Raw ``joblib.load`` of the same payload is measured as the baseline that a
tutorial's app pays, to show what verification costs. One-row predict time of the loaded model is shown too,
since ONNX trades a conversion for much faster inference.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth

ROOT = Path(__file__).resolve().parents[1]
FORMATS: list[tuple[str, dict[str, Any], bool]] = [  # format, save options, needs trust
    ("skops", {}, False),
    ("joblib", {"compress": ("zlib", 3)}, True),
    ("pickle", {}, True),
    ("onnx", {}, False),
]


def median_seconds(action: Callable[[], object], runs: int) -> float:
    action()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_format(model: RandomForestClassifier, X: Any, format: str, options: dict[str, Any], trust: bool,
                   path: Path, runs: int) -> list[dict[str, Any]]:
    row = X.head(1)
    save = median_seconds(lambda: berth.save(model, path, sample=X.head(20), format=format, overwrite=True,
                                             **options), max(3, runs // 3))
    manifest = berth.inspect(path)
    load = median_seconds(lambda: berth.load(path, trust=trust), runs)
    loaded = berth.load(path, trust=trust)
    predict = median_seconds(lambda: loaded.predict(row), runs * 5)
    rows = [{"format": format, "bytes": manifest.size, "save_s": save, "load_s": load, "predict_s": predict}]
    if format == "joblib":
        payload = path / manifest.files[0].path
        rows.append({"format": "joblib.load (raw file, no verification; baseline)",
                     "bytes": payload.stat().st_size, "save_s": None,
                     "load_s": median_seconds(lambda: joblib.load(payload), runs),
                     "predict_s": median_seconds(lambda: model.predict(row), runs * 5)})
    return rows


def measure(trees: int, runs: int) -> list[dict[str, Any]]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=trees, random_state=0).fit(X, y)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for format, options, trust in FORMATS:
            rows += measure_format(model, X, format, options, trust, Path(scratch) / format, runs)
    return rows


def render(rows: list[dict[str, Any]], trees: int, runs: int) -> str:
    skops = next(r for r in rows if r["format"] == "skops")
    lines = [
        "# Bundle formats",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/bundle_formats.py --trees {trees} --runs {runs}`"
        f": Python {platform.python_version()} on {platform.machine()}; iris RandomForestClassifier({trees}), "
        "medians; load = `berth.load` with sha256 verification and version check; predict = one row through "
        "the loaded model (signature coercion included).",
        "",
        "| format | size KiB | size / skops | save ms | load ms | load / skops | predict 1 row ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        save = f"{r['save_s'] * 1000:.1f}" if r["save_s"] is not None else "-"
        lines.append(
            f"| {r['format']} | {r['bytes'] / 1024:.1f} | {r['bytes'] / skops['bytes']:.2f} | {save} | "
            f"{r['load_s'] * 1000:.1f} | {r['load_s'] / skops['load_s']:.2f} | {r['predict_s'] * 1000:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "bundle_formats.md")
    args = parser.parse_args()
    report = render(measure(args.trees, args.runs), args.trees, args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
