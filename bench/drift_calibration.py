"""Drift calibration: false alarms under no drift and detection of real shifts, berth beside Evidently.

    .venv/bin/python -m bench.drift_calibration                 # sets up Evidently's venv once, then runs
    .venv/bin/python -m bench.drift_calibration --repeats 50    # quicker, noisier

Every scenario draws a training set of ``n`` rows (its statistics are what a bundle keeps) and a window of ``m``
rows, ``--repeats`` times with fixed seeds, for every reference size (150 to 20,000) and window (100 to 5,000):

- numeric: normal values; shifts of 0.25 and 0.5 standard deviations;
- ties: Poisson counts (a handful of distinct values); the rate moved from 2 to 2.4;
- categorical: four categories (50/30/15/5 %); 10 points moved from the commonest to the rarest;
- dataset: four features (two numeric, one of counts, one categorical); drift in three of them.

berth judges each window from the reference *statistics* (``berth.reference.feature_stats``), as a server does;
Evidently (its default per-column test choice and its 50 % dataset rule, run in its own virtual environment
under ``bench/.work/evidently-env``) gets the raw reference rows, which is more than berth keeps. The rates go
side by side to ``bench/results/drift_calibration.md``. A rate from R repetitions has a standard error of about
sqrt(p (1 - p) / R): 2.2 points at 5 % with 100 repetitions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "drift_calibration"
ENV = ROOT / "bench" / ".work" / "evidently-env"
RESULTS = ROOT / "bench" / "results" / "drift_calibration.md"
PINS = ["evidently==0.7.23", "pandas==2.3.3"]  # evidently 0.7 imports a helper pandas 3 removed
REFERENCE_SIZES = (150, 1000, 5000, 20_000)
WINDOWS = (100, 500, 5000)
SHARES = [0.5, 0.3, 0.15, 0.05]
SHIFTED = [0.4, 0.3, 0.15, 0.15]
CATEGORIES = np.array(list("abcd"), dtype=object)

Draw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class Kind:
    name: str
    dtype: str  # num or cat, for Evidently
    reference: Draw
    shifts: dict[str, Draw]


def normal(shift: float) -> Draw:
    return lambda rng, n: rng.normal(shift, 1.0, n)


def counts(rate: float) -> Draw:
    return lambda rng, n: rng.poisson(rate, n).astype(float)


def categories(shares: list[float]) -> Draw:
    return lambda rng, n: rng.choice(CATEGORIES, n, p=shares)


KINDS = [
    Kind("numeric", "num", normal(0.0), {"none": normal(0.0), "0.25 sd": normal(0.25), "0.5 sd": normal(0.5)}),
    Kind("ties", "num", counts(2.0), {"none": counts(2.0), "rate 2 to 2.4": counts(2.4)}),
    Kind("categorical", "cat", categories(SHARES), {"none": categories(SHARES), "10 points": categories(SHIFTED)}),
]
DATASET = {"a": KINDS[0], "b": KINDS[0], "c": KINDS[1], "d": KINDS[2]}
DATASET_SHIFTS = {"none": {}, "3 of 4 features": {"a": "0.5 sd", "b": "0.5 sd", "d": "10 points"}}


def log(message: str) -> None:
    print(f"[drift-calibration] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- Evidently's environment


def setup_evidently() -> Path:
    """Evidently in its own virtual environment (rebuilt only when the pins change)."""
    python = ENV / "bin" / "python"
    stamp = ENV / ".bench-requirements"
    if python.exists() and stamp.exists() and stamp.read_text() == "\n".join(PINS):
        return python
    log(f"creating {ENV} with {', '.join(PINS)} (a few minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(ENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True, timeout=1800)
    stamp.write_text("\n".join(PINS))
    return python


EVIDENTLY_WORKER = r'''
import json, sys, time
import numpy as np, pandas as pd
from evidently.legacy.calculations.stattests.registry import get_stattest

def verdict(reference, current, dtype):
    test = get_stattest(reference, current, dtype, None)  # Evidently's default choice for the column
    return bool(test(reference, current, dtype, None).drifted), test.name

jobs = json.load(open(sys.argv[1]))
out = []
started = time.perf_counter()
for job in jobs:
    data = np.load(job["file"], allow_pickle=False)
    flags, datasets, tests = [], [], set()
    for r in range(job["repeats"]):
        drifted = []
        for column, dtype in job["columns"].items():
            ref, cur = data[f"{r}:{column}:ref"], data[f"{r}:{column}:cur"]
            if dtype == "cat":
                ref, cur = pd.Series(ref.astype(str)), pd.Series(cur.astype(str))
            else:
                ref, cur = pd.Series(ref), pd.Series(cur)
            flag, name = verdict(ref, cur, dtype)
            tests.add(name)
            drifted.append(flag)
        flags.append(drifted)
        datasets.append(sum(drifted) / len(drifted) >= 0.5)  # Evidently's dataset rule: share >= drift_share
    out.append({"flags": flags, "dataset": datasets, "tests": sorted(tests)})
json.dump({"results": out, "seconds": time.perf_counter() - started}, open(sys.argv[2], "w"))
'''


# --------------------------------------------------------------------------- scenarios


@dataclass
class Cell:
    kind: str
    shift: str
    n_reference: int
    window: int
    columns: dict[str, str]  # column -> num/cat
    file: str = ""
    berth_features: float = 0.0
    berth_dataset: float = 0.0
    berth_tests: str = ""
    evidently_features: float = 0.0
    evidently_dataset: float = 0.0
    evidently_tests: str = ""


def draws(cell: Cell) -> dict[str, tuple[Draw, Draw]]:
    if cell.kind == "dataset":
        moved = DATASET_SHIFTS[cell.shift]
        return {column: (kind.reference, kind.shifts[moved.get(column, "none")]) for column, kind in DATASET.items()}
    kind = next(k for k in KINDS if k.name == cell.kind)
    return {"x": (kind.reference, kind.shifts[cell.shift])}


def run_cell(cell: Cell, repeats: int, seed: int) -> dict[str, np.ndarray]:
    """berth's verdicts on ``repeats`` draws of the cell; returns the draws (for Evidently)."""
    from berth.monitoring.drift import dataset_drift
    from berth.reference import reference_stats

    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    feature_alarms, dataset_alarms, tests = 0, 0, set()
    for r in range(repeats):
        references, windows = {}, {}
        for column, (reference, current) in draws(cell).items():
            references[column] = reference(rng, cell.n_reference)
            windows[column] = current(rng, cell.window)
            arrays[f"{r}:{column}:ref"] = references[column].astype(str) if cell.columns[column] == "cat" \
                else references[column]
            arrays[f"{r}:{column}:cur"] = windows[column].astype(str) if cell.columns[column] == "cat" \
                else windows[column]
        stats = reference_stats(pd.DataFrame(references))
        result = dataset_drift(pd.DataFrame(windows), stats)
        feature_alarms += sum(f.drifted for f in result.features)
        dataset_alarms += result.drifted
        tests |= {f.method for f in result.features if f.method}
    cell.berth_features = feature_alarms / (repeats * len(cell.columns))
    cell.berth_dataset = dataset_alarms / repeats
    cell.berth_tests = ", ".join(sorted(tests))
    return arrays


def cells() -> list[Cell]:
    found = []
    for kind in KINDS:
        for shift in kind.shifts:
            for n in REFERENCE_SIZES:
                for m in WINDOWS:
                    found.append(Cell(kind.name, shift, n, m, {"x": kind.dtype}))
    for shift in DATASET_SHIFTS:
        for n in REFERENCE_SIZES:
            for m in WINDOWS:
                found.append(Cell("dataset", shift, n, m, {c: k.dtype for c, k in DATASET.items()}))
    return found


# --------------------------------------------------------------------------- report


def rate(cell: Cell, who: str) -> float:
    """The rate that matters for the cell: dataset drift for the dataset scenario, else the feature's."""
    return float(getattr(cell, f"{who}_dataset" if cell.kind == "dataset" else f"{who}_features"))


def null_of(cell: Cell, nulls: list[Cell]) -> Cell:
    return next(x for x in nulls if (x.kind, x.n_reference, x.window) == (cell.kind, cell.n_reference, cell.window))


def write_results(all_cells: list[Cell], repeats: int, seconds: dict[str, float]) -> None:
    lines = [
        "# Drift calibration: berth beside Evidently",
        "",
        f"`python -m bench.drift_calibration --repeats {repeats}` on {time.strftime('%Y-%m-%d')}: {repeats} "
        "fixed-seed repetitions per cell (standard error about 2 points at 5 %, 3 at 10-90 %). Each repetition "
        "draws a reference of n rows and a window of m rows. berth judges from the reference's stored statistics "
        "(`feature_stats`: 101 percentiles, a 20-bin histogram or category counts); Evidently 0.7.23 gets the raw "
        "reference rows and picks its default test per column (KS / chi-square / z up to 1,000 reference rows, "
        "Wasserstein / Jensen-Shannon above). Dataset drift: berth's rule (more than half of the features, or "
        "more drifted features than chance gives 5 % of the time), Evidently's (at least half).",
        "",
        f"berth {seconds['berth']:.0f} s, Evidently {seconds['evidently']:.0f} s for the whole grid.",
        "",
    ]
    worst = {}
    for title, shift_filter in (("No drift: false alarms (lower is better; target <= 6 % per feature, <= 5 % "
                                 "dataset)", lambda s: s == "none"),
                                ("Real shifts: detection (higher is better)", lambda s: s != "none")):
        lines += [f"## {title}", "", "| data | shift | reference n | window m | berth test | berth feature | "
                  "Evidently test | Evidently feature | berth dataset | Evidently dataset |",
                  "| --- | --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |"]
        for cell in all_cells:
            if not shift_filter(cell.shift):
                continue
            dataset = (f"{cell.berth_dataset:.1%} | {cell.evidently_dataset:.1%}" if cell.kind == "dataset"
                       else "- | -")
            lines.append(f"| {cell.kind} | {cell.shift} | {cell.n_reference:,} | {cell.window:,} | {cell.berth_tests} "
                         f"| {cell.berth_features:.1%} | {cell.evidently_tests} | {cell.evidently_features:.1%} | "
                         f"{dataset} |")
        lines.append("")
    nulls = [c for c in all_cells if c.shift == "none"]
    shifts = [c for c in all_cells if c.shift != "none"]
    worst["feature"] = max(nulls, key=lambda c: c.berth_features)
    worst["dataset"] = max((c for c in nulls if c.kind == "dataset"), key=lambda c: c.berth_dataset)
    worst["evidently"] = max(nulls, key=lambda c: c.evidently_features)
    behind = [c for c in shifts if rate(c, "berth") + 1e-9 < rate(c, "evidently")]
    lines += [
        "## Summary",
        "",
        f"- berth's highest per-feature false-alarm rate: {worst['feature'].berth_features:.1%} "
        f"({worst['feature'].kind}, n={worst['feature'].n_reference:,}, m={worst['feature'].window:,}); Evidently's: "
        f"{worst['evidently'].evidently_features:.1%} ({worst['evidently'].kind}, "
        f"n={worst['evidently'].n_reference:,}, m={worst['evidently'].window:,}).",
        f"- berth's highest dataset-drift false-alarm rate: {worst['dataset'].berth_dataset:.1%} "
        f"(n={worst['dataset'].n_reference:,}, m={worst['dataset'].window:,}).",
        f"- shift cells where berth detects less than Evidently: {len(behind)} of {len(shifts)}"
        + (": " + "; ".join(f"{c.kind} {c.shift} n={c.n_reference:,} m={c.window:,} ({rate(c, 'berth'):.0%} vs "
                             f"{rate(c, 'evidently'):.0%}; Evidently's no-drift rate there "
                             f"{rate(null_of(c, nulls), 'evidently'):.0%})" for c in behind) if behind else "."),
        "",
        "(For the dataset scenario the rate compared is dataset drift; for the others, the feature's.)",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    log(f"wrote {RESULTS}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=100, help="repetitions per cell (bounded: 10 to 1000)")
    parser.add_argument("--no-evidently", action="store_true", help="berth only (no Evidently venv needed)")
    parser.add_argument("--only", choices=["numeric", "ties", "categorical", "dataset"],
                        help="run one scenario and replace its rows in the existing results")
    args = parser.parse_args()
    repeats = min(max(args.repeats, 10), 1000)
    WORK.mkdir(parents=True, exist_ok=True)
    python = None if args.no_evidently else setup_evidently()
    all_cells = [c for c in cells() if args.only is None or c.kind == args.only]
    started = time.perf_counter()
    seeds = {(c.kind, c.shift, c.n_reference, c.window): 1000 + i for i, c in enumerate(cells())}
    for index, cell in enumerate(all_cells):
        arrays = run_cell(cell, repeats, seed=seeds[(cell.kind, cell.shift, cell.n_reference, cell.window)])
        cell.file = str(WORK / f"cell-{index}.npz")
        np.savez(cell.file, **arrays)
        log(f"{index + 1}/{len(all_cells)} {cell.kind} {cell.shift} n={cell.n_reference} m={cell.window}: "
            f"berth {cell.berth_features:.1%} / dataset {cell.berth_dataset:.1%}")
    seconds = {"berth": time.perf_counter() - started, "evidently": 0.0}
    if python is not None:
        worker = WORK / "evidently_worker.py"
        worker.write_text(EVIDENTLY_WORKER)
        jobs = WORK / "jobs.json"
        jobs.write_text(json.dumps([{"file": c.file, "repeats": repeats, "columns": c.columns} for c in all_cells]))
        output = WORK / "evidently.json"
        log("running Evidently on the same draws")
        subprocess.run([str(python), str(worker), str(jobs), str(output)], check=True, timeout=7200,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
        answer = json.loads(output.read_text())
        seconds["evidently"] = answer["seconds"]
        for cell, result in zip(all_cells, answer["results"], strict=True):
            flags = np.asarray(result["flags"], dtype=bool)
            cell.evidently_features = float(flags.mean())
            cell.evidently_dataset = float(np.mean(result["dataset"]))
            cell.evidently_tests = ", ".join(result["tests"])
    if args.only is not None:
        all_cells = merge_previous(all_cells)
    write_results(all_cells, repeats, seconds)


def merge_previous(fresh: list[Cell]) -> list[Cell]:
    """The previous results' cells (read back from the table) with ``fresh`` ones in place of theirs."""
    previous: dict[tuple[str, str, int, int], Cell] = {}
    if RESULTS.exists():
        for line in RESULTS.read_text().splitlines():
            parts = [p.strip() for p in line.strip().strip("|").split("|")]
            if len(parts) != 10 or not parts[2].replace(",", "").isdigit():
                continue
            kind, shift, n, m = parts[0], parts[1], int(parts[2].replace(",", "")), int(parts[3].replace(",", ""))
            rate = lambda text: float(text.rstrip("%")) / 100 if text != "-" else 0.0  # noqa: E731
            columns = {c: k.dtype for c, k in DATASET.items()} if kind == "dataset" else {"x": "num"}
            previous[(kind, shift, n, m)] = Cell(kind, shift, n, m, columns, berth_tests=parts[4],
                                                 berth_features=rate(parts[5]), evidently_tests=parts[6],
                                                 evidently_features=rate(parts[7]), berth_dataset=rate(parts[8]),
                                                 evidently_dataset=rate(parts[9]))
    for cell in fresh:
        previous[(cell.kind, cell.shift, cell.n_reference, cell.window)] = cell
    order = [(c.kind, c.shift, c.n_reference, c.window) for c in cells()]
    return [previous[key] for key in order if key in previous]


if __name__ == "__main__":
    main()
