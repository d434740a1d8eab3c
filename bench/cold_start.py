"""Cold start: from process start to ready, for ``berth serve`` and the tutorial's Flask app under gunicorn(1).

    .venv/bin/python bench/cold_start.py [--runs 5] [--before OTHER/.venv/bin/berth] [--output FILE]

berth is timed from ``Popen`` to the first ``200`` of ``GET /health/ready`` (with ``--workers 2`` that is when
every worker serves); the Flask app (``bench/serving/apps/flask_app.py``, run by ``gunicorn -w 1`` from
``bench/.envs/flask``, made by ``python -m bench.serving.setup_baselines flask``) from ``Popen`` to the first
``200`` answer of ``POST /predict``: it has no readiness route, and it loads its model before it listens.
Readiness is polled every 10 ms with the standard library's HTTP client.

Models: the iris LogisticRegression and RandomForestClassifier(100) of ``bench/serving/run.py``, each saved as a
bundle in two formats: ``onnx`` (converted by skl2onnx; serving it needs no scikit-learn, the stand-in for a
compiled twin) and ``skops`` (berth's default for scikit-learn). Each case runs ``--runs`` times, the cases
taking turns (one round is every case once), after one warm-up round (file caches, ``.pyc`` files) that is not
counted. The prediction log is on, as shipped, into a scratch directory.

``--before`` times a second berth (another checkout's console script, e.g. the main branch before a change) in
the same rounds, for the ratio of each case now to before. Results go to ``bench/results/cold_start.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BERTH = Path(sys.executable).parent / "berth"
GUNICORN = ROOT / "bench" / ".envs" / "flask" / "bin" / "gunicorn"
APPS = ROOT / "bench" / "serving" / "apps"
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "cold_start.md"
HOST = "127.0.0.1"
ROW = [5.1, 3.5, 1.4, 0.2]
POLL_S = 0.01
TIMEOUT_S = 120.0
MODELS = {"logreg": "LogisticRegression", "forest": "RandomForestClassifier(100)"}
# bundle formats: label -> keywords of berth.save; "twin" is a skops bundle with its compiled twin, which the
# berth before twins cannot serve (no `before` row for it)
FORMATS: dict[str, dict[str, Any]] = {"onnx": {"format": "onnx", "compile": False}, "skops": {"compile": False},
                                      "twin": {"compile": True}}
TWIN_FORMATS = frozenset({"twin"})
WORKERS = (1, 2)
TARGET_WORKERS_S = {1: 1.5, 2: 2.0}


@dataclass
class Case:
    label: str
    model: str
    command: list[str]
    probe: Callable[[int], bool]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def answers(port: int, method: str, path: str, body: bytes | None = None) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request(method, path, body=body, headers={"content-type": "application/json"} if body else {})
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def berth_ready(port: int) -> bool:
    return answers(port, "GET", "/health/ready")


def flask_answers(port: int) -> bool:
    return answers(port, "POST", "/predict", json.dumps({"features": ROW}).encode())


def time_start(case: Case) -> None:
    """One start of ``case``: seconds from Popen to its first ready answer, then SIGTERM to its group."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in case.command]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=case.cwd, env={**os.environ, **case.env}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        while not case.probe(port):
            if process.poll() is not None:
                error = (process.stderr.read() if process.stderr else b"").decode(errors="replace")[-2000:]
                case.failures.append(f"exited with {process.returncode}: {error}")
                return
            if time.perf_counter() - started > TIMEOUT_S:
                case.failures.append(f"not ready within {TIMEOUT_S:g} s")
                return
            time.sleep(POLL_S)
        case.seconds.append(time.perf_counter() - started)
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
    if process.stderr is not None:
        process.stderr.close()


def make_models(work: Path) -> dict[str, Path]:
    """Train the iris models; save each as a joblib file (for Flask) and as a bundle per format."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    estimators = {"logreg": LogisticRegression(max_iter=1000),
                  "forest": RandomForestClassifier(n_estimators=100, random_state=0)}
    paths: dict[str, Path] = {}
    for key, estimator in estimators.items():
        estimator.fit(X, y)
        paths[f"{key}/joblib"] = work / f"{key}.joblib"
        joblib.dump(estimator, paths[f"{key}/joblib"])
        for label, options in FORMATS.items():
            paths[f"{key}/{label}"] = work / f"{key}-{label}"
            berth.save(estimator, paths[f"{key}/{label}"], sample=X.head(20), reference=X, name=f"iris-{key}",
                       **options)
    return paths


def cases(paths: dict[str, Path], work: Path, before: Path | None) -> list[Case]:
    env = {"BERTH_MONITOR_DIR": str(work / "monitoring"), "BERTH_HOME": str(work / "home")}
    found: list[Case] = []
    for key in MODELS:
        if GUNICORN.exists():
            found.append(Case("gunicorn(1), Flask tutorial app", key,
                              [str(GUNICORN), "-w", "1", "-b", f"{HOST}:{{port}}", "flask_app:app"], flask_answers,
                              cwd=APPS, env={"MODEL_PATH": str(paths[f"{key}/joblib"])}))
        for label in FORMATS:
            for workers in WORKERS:
                for name, script in (("berth", BERTH), ("before", before)):
                    if script is None or (name == "before" and label in TWIN_FORMATS):
                        continue
                    found.append(Case(f"{name} {label} --workers {workers}", key,
                                      [str(script), "serve", str(paths[f"{key}/{label}"]), "--workers", str(workers),
                                       "--host", HOST, "--port", "{port}"], berth_ready, env=env))
    return found


def measure(all_cases: list[Case], runs: int, after_round: Callable[[int], None]) -> None:
    for round_ in range(runs + 1):  # round 0 warms caches and is not counted
        for case in all_cases:
            time_start(case)
            if round_ == 0:
                case.seconds.clear()
                case.failures.clear()
            elif case.seconds:
                print(f"round {round_}: {case.model:6} {case.label:40} {case.seconds[-1]:6.2f} s", file=sys.stderr)
        if round_:
            after_round(round_)


def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or b is None or b == 0 else f"{a / b:.2f}"


def render(all_cases: list[Case], runs: int, before: Path | None, rounds: int | None = None) -> str:
    by = {(c.model, c.label): c for c in all_cases}
    lines = [
        "# Cold start",
        "",
        f"Measured {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} by `bench/cold_start.py --runs {runs}"
        f"{' --before ...' if before else ''}`: Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores (shared with other work: compare ratios from one run, not absolute seconds). "
        "Seconds from process start to the first ready answer (berth: `GET /health/ready` 200, every worker "
        "serving; gunicorn: the first `POST /predict` 200), median of the runs, cases taking turns."
        + (f" Interrupted: {rounds} of {runs} rounds done." if rounds is not None and rounds < runs else ""),
        "",
        "| model | server | median s | min s | max s | / gunicorn(1) | now / before | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in all_cases:
        if case.label.startswith("before"):
            continue
        flask = by.get((case.model, "gunicorn(1), Flask tutorial app"))
        earlier = by.get((case.model, "before" + case.label[5:])) if case.label.startswith("berth") else None
        target = ""
        if case.label.startswith(("berth onnx", "berth twin")):
            workers = int(case.label.rsplit(" ", 1)[1])
            target = f"<= {TARGET_WORKERS_S[workers]:g} s" + (" and <= gunicorn(1)" if workers == 1 else "")
        elif case.label.startswith("berth skops"):
            target = "now / before <= 0.5"
        row = [MODELS[case.model], f"`{case.label}`", seconds(case.median),
               seconds(min(case.seconds) if case.seconds else None),
               seconds(max(case.seconds) if case.seconds else None),
               "" if case is flask or flask is None else ratio(case.median, flask.median),
               ratio(case.median, earlier.median) if earlier else "", target]
        lines.append("| " + " | ".join(row) + " |")
    if before is not None:
        lines += ["", "`before` rows (the same commands with the other berth):", "",
                  "| model | server | median s | min s | max s |", "| --- | --- | ---: | ---: | ---: |"]
        for case in all_cases:
            if case.label.startswith("before"):
                lines.append(f"| {MODELS[case.model]} | `{case.label}` | {seconds(case.median)} | "
                             f"{seconds(min(case.seconds) if case.seconds else None)} | "
                             f"{seconds(max(case.seconds) if case.seconds else None)} |")
    failed = [c for c in all_cases if c.failures]
    if failed:
        lines += ["", "Failures:", ""] + [f"- {c.model} `{c.label}`: {c.failures[0][:300]}" for c in failed]
    if not GUNICORN.exists():
        lines += ["", f"gunicorn was not measured: {GUNICORN} is missing (python -m bench.serving.setup_baselines "
                      "flask)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="counted starts per case (default: 5)")
    parser.add_argument("--before", type=Path, help="another berth console script, timed in the same rounds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.before is not None and not args.before.is_file():
        parser.error(f"--before {args.before}: no such file")
    work = Path(tempfile.mkdtemp(prefix="berth-cold-start-"))
    args.output.parent.mkdir(parents=True, exist_ok=True)

    def write(rounds: int) -> None:  # after every round: an interrupted run keeps what it measured
        args.output.write_text(render(all_cases, args.runs, args.before, rounds))

    try:
        paths = make_models(work)
        all_cases = cases(paths, work, args.before)
        measure(all_cases, args.runs, write)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(args.output.read_text())
    print(f"written to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
