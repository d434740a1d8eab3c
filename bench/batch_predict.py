"""``berth predict`` of a large CSV against the plain pandas + joblib script, in one run, whole processes.

    .venv/bin/python bench/batch_predict.py [--rows 1000000] [--runs 3] [--threads 1,2]
                                            [--output bench/results/batch_predict.md]

The model is a RandomForestClassifier(n_estimators=100, random_state=0) fitted on iris, written three ways: a
joblib file (what the plain script loads), a berth bundle (skops, the default) and a berth bundle of the onnx
flavor (skl2onnx, run by onnxruntime: the stand-in for a compiled twin until bundles carry one), both saved
without a twin; when ``berth.save`` takes ``compile=``, a skops bundle with its compiled twin is measured too.
The rows are ``--rows`` iris-like rows (the iris rows drawn at random, plus Gaussian noise of 0.1, two
decimals, seeded) in one CSV.

The plain script is the tutorial's: ``pd.read_csv``, ``joblib.load(...).predict``, ``DataFrame.to_csv``. Each
contender runs as its own process under ``/usr/bin/time`` (wall seconds, user + system CPU seconds, peak RSS of
the process), round-robin, ``--runs`` rounds after one warm-up round; the table gives medians and each berth
variant's speed-up over the plain script (plain time / berth time, from the medians of the same run). Also
timed: importing berth and loading each bundle, the fixed cost inside every ``berth predict``. Every berth
output's predictions are checked equal to the plain script's before the table is written.
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import berth

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
BERTH = str(Path(sys.executable).with_name("berth"))
PLAIN_SCRIPT = """\
import sys
import joblib
import pandas as pd
frame = pd.read_csv(sys.argv[1])
model = joblib.load(sys.argv[2])
pd.DataFrame({"prediction": model.predict(frame)}).to_csv(sys.argv[3], index=False)
"""


@dataclass
class Contender:
    name: str
    what: str
    command: list[str]
    output: Path | None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)

    def median(self, values: list[float]) -> float:
        return statistics.median(values)


def build(work: Path, rows: int) -> tuple[Path, dict[str, Path]]:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    joblib.dump(model, work / "model.joblib")
    bundles = {"skops": work / "skops", "onnx": work / "onnx"}
    # the plain bundles carry no twin (where berth.save can build one), so that each runs what it names
    plain: dict[str, object] = {"compile": False} if "compile" in inspect.signature(berth.save).parameters else {}
    berth.save(model, bundles["skops"], sample=X.head(20), **plain)
    berth.save(model, bundles["onnx"], sample=X.head(20), format="onnx", **plain)
    if plain:
        bundles["twin"] = work / "twin"
        berth.save(model, bundles["twin"], sample=X.head(20), compile=True)
    rng = np.random.default_rng(0)
    values = X.to_numpy()[rng.integers(0, len(X), rows)] + rng.normal(0, 0.1, (rows, X.shape[1]))
    data = work / "rows.csv"
    pd.DataFrame(values.round(2), columns=X.columns).to_csv(data, index=False)
    return data, bundles


def timed(command: list[str], log: Path) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MiB) of one run of ``command``."""
    report = log.with_suffix(".time")
    with log.open("ab") as sink:
        subprocess.run(["/usr/bin/time", "-o", str(report), "-f", "%e %U %S %M", *command], check=True,
                       stdout=sink, stderr=sink)
    wall, user, system, kib = report.read_text().split()[-4:]
    return float(wall), float(user) + float(system), int(kib) / 1024


def check_outputs(plain: Path, contenders: list[Contender]) -> None:
    expected = pd.read_csv(plain)["prediction"].to_numpy()
    for contender in contenders:
        if contender.output is None or contender.name == "plain":
            continue
        got = pd.read_csv(contender.output)["prediction"].to_numpy()
        if not np.array_equal(got, expected):
            raise SystemExit(f"{contender.name}: predictions differ from the plain script's "
                             f"on {int(np.sum(got != expected))} rows")


def write_report(path: Path, args: argparse.Namespace, contenders: list[Contender], loads: list[Contender],
                 load_before: float, load_after: float) -> None:
    plain = next(c for c in contenders if c.name == "plain")
    base_wall, base_rss = plain.median(plain.wall), plain.median(plain.rss_mib)
    lines = [
        "# berth predict vs a plain pandas + joblib script",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; `python bench/batch_predict.py --rows {args.rows} --runs {args.runs} "
        f"--threads {args.threads}`. Load average before / after: {load_before:.1f} / {load_after:.1f} (the "
        "machine is shared: ratios from the same run are the figures to quote).",
        "",
        f"{args.rows:,} iris-like rows in one CSV; RandomForestClassifier(100) fitted on iris. Whole processes "
        f"under `/usr/bin/time`, round-robin, median of {args.runs} after a warm-up round. Speed-up = plain "
        "wall time / berth wall time; peak RSS of the process. Predictions checked equal to the plain "
        "script's.",
        "",
        "| contender | what | wall s | CPU s | peak RSS MiB | speed-up vs plain [target 2x] | RSS vs plain |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in contenders:
        wall, rss = c.median(c.wall), c.median(c.rss_mib)
        lines.append(f"| {c.name} | {c.what} | {wall:.2f} | {c.median(c.cpu):.2f} | {rss:.0f} | "
                     f"{base_wall / wall:.2f}x | {rss / base_rss:.2f} |")
    lines += ["", "Fixed cost inside each run: a process that imports berth and loads the bundle, nothing else.",
              "", "| bundle | wall s | CPU s | peak RSS MiB |", "| --- | ---: | ---: | ---: |"]
    for c in loads:
        lines.append(f"| {c.name} | {c.median(c.wall):.2f} | {c.median(c.cpu):.2f} | {c.median(c.rss_mib):.0f} |")
    lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="berth predict --threads values to measure")
    parser.add_argument("--chunk-size", type=int, default=None, help="berth predict --chunk-size (default: its own)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "batch_predict.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="berth-batch-bench-") as scratch:
        work = Path(scratch)
        data, bundles = build(work, args.rows)
        (work / "plain.py").write_text(PLAIN_SCRIPT)
        contenders = [Contender("plain", "pd.read_csv + joblib.load().predict + to_csv",
                                [PYTHON, str(work / "plain.py"), str(data), str(work / "model.joblib"),
                                 str(work / "plain.csv")], work / "plain.csv")]
        extra = ["--chunk-size", str(args.chunk_size)] if args.chunk_size else []
        for kind, bundle in bundles.items():
            for threads in args.threads.split(","):
                out = work / f"{kind}-{threads}.csv"
                contenders.append(Contender(f"berth {kind} --threads {threads}", f"berth predict, {kind} bundle",
                                            [BERTH, "predict", str(bundle), "-i", str(data), "-o", str(out),
                                             "--threads", threads, *extra], out))
        loads = [Contender(kind, "import berth; berth.load", [PYTHON, "-c", f"import berth; berth.load({str(b)!r})"],
                           None) for kind, b in bundles.items()]
        load_before = os.getloadavg()[0]
        for round_ in range(args.runs + 1):
            for contender in contenders + loads:
                wall, cpu, rss = timed(contender.command, work / "log.txt")
                if round_:  # the first round warms the page cache and the imports
                    contender.wall.append(wall)
                    contender.cpu.append(cpu)
                    contender.rss_mib.append(rss)
                    print(f"round {round_}: {contender.name}: {wall:.2f} s, {rss:.0f} MiB", flush=True)
        load_after = os.getloadavg()[0]
        check_outputs(work / "plain.csv", contenders)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_report(args.output, args, contenders, loads, load_before, load_after)
    print(args.output.read_text())


if __name__ == "__main__":
    main()
