"""How long ``import berth`` and ``berth --help`` take, next to importing the libraries people compare it with.

    .venv/bin/python bench/import_time.py [--runs 15] [--output bench/results/import_time.md]

Each command runs in a fresh interpreter ``--runs`` times after one warm-up run; the table gives the median and
the fastest wall time, the time above a bare interpreter start (``python -c pass``), and the ratio of each
median to ``import berth``'s. Baselines whose package is not installed are left out and named in the report.

The commands run as a user's would, with bytecode caching on (``PYTHONDONTWRITEBYTECODE`` is dropped from their
environment), so the warm-up run leaves ``.pyc`` files behind and the timed runs measure imports, not compiling.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "import_time.md"
# label, module that must be importable (None: always run), command after the interpreter
PYTHON_CASES: list[tuple[str, str | None, list[str]]] = [
    ("python -c pass (interpreter start)", None, ["-c", "pass"]),
    ("import berth", "berth", ["-c", "import berth"]),
    ("import pandas", "pandas", ["-c", "import pandas"]),
    ("import sklearn", "sklearn", ["-c", "import sklearn"]),
    ("import sklearn.ensemble", "sklearn", ["-c", "import sklearn.ensemble"]),
    ("import mlflow", "mlflow", ["-c", "import mlflow"]),
]


@dataclass
class Timing:
    label: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


def user_environment() -> dict[str, str]:
    drop = {"PYTHONDONTWRITEBYTECODE", "PYTHONPROFILEIMPORTTIME", "PYTHONSTARTUP"}
    return {name: value for name, value in os.environ.items() if name not in drop}


def time_command(command: list[str], runs: int) -> list[float]:
    env = user_environment()
    subprocess.run(command, check=True, capture_output=True, env=env)  # warm-up: file caches, .pyc files
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        seconds.append(time.perf_counter() - started)
    return seconds


def berth_script(python: str) -> Path | None:
    script = Path(python).parent / "berth"
    return script if script.is_file() else None


def measure(python: str, runs: int) -> tuple[list[Timing], list[str]]:
    timings: list[Timing] = []
    skipped: list[str] = []
    for label, module, arguments in PYTHON_CASES:
        if module is not None and importlib.util.find_spec(module) is None:
            skipped.append(f"{label} ({module} is not installed)")
            continue
        timings.append(Timing(label, time_command([python, *arguments], runs)))
        print(f"{label:40} median {timings[-1].median * 1000:8.1f} ms", file=sys.stderr)
        if label == "import berth":
            script = berth_script(python)
            if script is None:
                skipped.append("berth --help (no berth console script beside the interpreter)")
            else:
                timings.append(Timing("berth --help", time_command([str(script), "--help"], runs)))
                print(f"{'berth --help':40} median {timings[-1].median * 1000:8.1f} ms", file=sys.stderr)
    return timings, skipped


def render(timings: list[Timing], skipped: list[str], runs: int) -> str:
    by_label = {t.label: t for t in timings}
    start = by_label["python -c pass (interpreter start)"].median
    berth = by_label.get("import berth")
    lines = [
        "# Import time",
        "",
        f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `bench/import_time.py --runs {runs}`: "
        f"Python {platform.python_version()} on {platform.machine()}, {runs} runs per command after one "
        "warm-up, wall time of a fresh process each run, bytecode caching on.",
        "",
        "| command | median ms | fastest ms | above interpreter start, ms | median / `import berth` |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for timing in timings:
        ratio = f"{timing.median / berth.median:.2f}" if berth else "n/a"
        lines.append(f"| `{timing.label}` | {timing.median * 1000:.1f} | {timing.best * 1000:.1f} | "
                     f"{max(timing.median - start, 0.0) * 1000:.1f} | {ratio} |")
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (default: 15)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to measure (default: this one)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    timings, skipped = measure(args.python, args.runs)
    report = render(timings, skipped, args.runs)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
