"""Per-request cost of berth's HTTP path against the tutorial's Flask app under gunicorn(2), in one run.

    .venv/bin/python -m bench.request_path --label after                 # writes bench/results/request_path.md
    .venv/bin/python -m bench.request_path --label before --models logreg --concurrency 64
    .venv/bin/python -m bench.request_path --label inline --configs "thread=BERTH_INLINE_BUDGET_MS=0" "inline="

Each run trains the iris models in berth's .venv (LogisticRegression, RandomForestClassifier(100), and the same
two converted to ONNX with skl2onnx: the stand-in for a compiled twin), then for each model starts the gunicorn
baseline and every berth configuration one after the other, and drives each with wrk (one thread, the same
single-row JSON POST) at each concurrency. Server start, stop, wrk and the CPU accounting are the serving
benchmark's own (``bench/serving/run.py``), so the numbers compare with ``bench/results/serving.md``.

Results accumulate by ``--label`` in ``bench/results/request_path.json`` (a label measured again replaces its
earlier numbers) and the Markdown file shows every label side by side: req/s, latency, server CPU per request
(server cores busy / req/s) and berth's ratio to the gunicorn app measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.serving import run as serving
from bench.serving import setup_baselines

ROOT = serving.ROOT
WORK = ROOT / "bench" / ".work" / "request_path"
RESULTS = ROOT / "bench" / "results"
DEFAULT_CONFIGS = ["berth="]  # label=extra arguments of `berth serve`
MODELS = ("logreg", "forest", "onnx-logreg", "onnx-forest")


def prepare(keys: list[str]) -> list[serving.Model]:
    """Train and save each model as a berth bundle (and a joblib file for the Flask app)."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    made: dict[str, Any] = {}
    models = []
    for key in keys:
        kind = key.removeprefix("onnx-")
        if kind not in made:
            estimator = (LogisticRegression(max_iter=1000) if kind == "logreg"
                         else RandomForestClassifier(n_estimators=100, random_state=0))
            made[kind] = estimator.fit(X, y)
        estimator = made[kind]
        base = WORK / "models" / key
        base.mkdir(parents=True, exist_ok=True)
        model = serving.Model(key, f"{type(estimator).__name__}{' (ONNX)' if key != kind else ''}",
                              base / "model.joblib", base / "unused-mlflow", base / "bundle", list(X.columns))
        joblib.dump(estimator, model.joblib_path)
        options = {"format": "onnx"} if key != kind else {}
        berth.save(estimator, model.bundle_dir, sample=X.head(20), reference=X, name=f"iris-{key}",
                   overwrite=True, **options)
        model.expected = estimator.predict(pd.DataFrame([serving.ROW], columns=X.columns)).tolist()[0]
        models.append(model)
    return models


def berth_spec(label: str, extra: str) -> serving.Spec:
    """``berth serve BUNDLE EXTRA``; a label starting with ``granian`` runs berth's ASGI app under granian instead
    (``EXTRA``: granian's options, e.g. ``--workers 2``), for the uvicorn/granian comparison."""
    [spec] = serving.berth_specs([extra], None)
    spec.key = label
    if label.startswith("granian"):
        args = [word for word in shlex.split(extra) if not word.startswith("BERTH_")]
        spec.argv = lambda m, p: [str(serving.BERTH_BIN / "granian"), "--interface", "asgi", "--factory", "--host",
                                  serving.HOST, "--port", str(p), "--loop", "uvloop", "--no-access-log",
                                  "--log-level", "warning", *args, "bench.request_path:granian_app"]
    return spec


def granian_app() -> Any:
    """The app granian serves: berth's, built as ``berth serve`` builds it (models load before listening)."""
    from berth.serving.app import create_app
    from berth.serving.server import configure_logging
    from berth.serving.settings import ServeSettings

    settings = ServeSettings()
    configure_logging(settings.log_level)
    return create_app([os.environ["BENCH_BUNDLE_DIR"]], settings, load_in_background=False)


def _without_env(argv: Any) -> Any:
    """A spec's command without the ``BERTH_NAME=VALUE`` words of its configuration (they go to the environment)."""
    return lambda model, port: [word for word in argv(model, port) if not word.startswith("BERTH_")]


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if not args.no_setup:
        setup_baselines.setup(["flask"])
    models = prepare(args.models)
    gunicorn = next(s for s in serving.baseline_specs() if s.key == "gunicorn")
    configs = [c.partition("=") for c in args.configs]
    records = []
    for model in models:
        os.environ["BENCH_BUNDLE_DIR"] = str(model.bundle_dir)
        specs = ([] if args.no_baseline else [gunicorn]) + [berth_spec(label, extra) for label, _, extra in configs]
        for spec in specs:
            extra = next((extra for label, _, extra in configs if label == spec.key), "")
            env = dict(word.split("=", 1) for word in shlex.split(extra) if word.startswith("BERTH_"))
            spec.argv = _without_env(spec.argv)
            saved = {name: os.environ.get(name) for name in env}
            os.environ.update(env)  # the server's environment is this process's (serving.server_env)
            try:
                record = serving.bench_server(spec, model, args)
            finally:
                for name, value in saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value
            if spec.key != "gunicorn":
                record["berth_args"] = extra
            records.append(record)
    return {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": serving.machine(),
            "duration_s": args.duration, "concurrency": args.concurrency, "records": records}


# --------------------------------------------------------------------------------------------- report

def cpu_ms(run: dict[str, Any]) -> float | None:
    """Server CPU per request: cores busy in the server's processes over requests per second."""
    return run["cpu_cores"]["server"] / run["rps"] * 1000 if run["rps"] else None


def render(data: dict[str, Any]) -> str:
    lines = [
        "# Request path: berth against the tutorial's Flask app under gunicorn(2)",
        "",
        "Written by `python -m bench.request_path`; raw numbers in `request_path.json`. Each label is one run: "
        "within a run the gunicorn baseline and berth were measured one after the other on the same machine, so "
        "ratios compare within a run only. wrk: one thread, keep-alive connections, the same single-row JSON "
        "POST; berth with its defaults (prediction log on, metrics on, validation on) unless its arguments say "
        "otherwise. CPU per request = the server's processes' busy cores / req/s. 'other' = cores used by other "
        "programs during the run (this machine is shared; ⚠ above 0.2).",
        "",
    ]
    for label, run in data.items():
        lines += [f"## {label}", "", f"{run['when']}; {run['duration_s']} s per concurrency. {run.get('note', '')}",
                  ""]
        lines += ["| model | server | c | req/s | ÷ gunicorn | p50 ms | p99 ms | server CPU ms/req | cores: server / "
                  "wrk / other | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        base: dict[tuple[str, int], float] = {}
        for record in run["records"]:
            if record["server"] == "gunicorn":
                for r in record["runs"]:
                    base[(record["model"], r["concurrency"])] = r["rps"]
        for record in run["records"]:
            name = record["server"] + (f" `{record['berth_args']}`" if record.get("berth_args") else "")
            if record.get("error") or record.get("skipped"):
                lines.append(f"| {record['model']} | {name} | | {record.get('error') or record.get('skipped')} "
                             "| | | | | | |")
            for r in record["runs"]:
                b = base.get((record["model"], r["concurrency"]))
                cores, ms = r["cpu_cores"], cpu_ms(r)
                lines.append(" | ".join([
                    f"| {record['model']}", name, str(r["concurrency"]), f"{r['rps']:,.0f}",
                    f"{r['rps'] / b:.2f}x" if b else "-", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                    f"{ms:.3f}" if ms is not None else "-",
                    f"{cores['server']:.2f} / {cores['wrk']:.2f} / {cores['other']:.2f}"
                    + (" ⚠" if cores["other"] > 0.2 else ""),
                    f"{r['non_2xx'] + r['socket_errors']} |"]))
        lines.append("")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help="name of this run in the results (e.g. before, after)")
    parser.add_argument("--note", default="", help="one line on what this run measured")
    parser.add_argument("--models", type=lambda s: s.split(","), default=["logreg", "onnx-logreg"],
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS,
                        help="berth configurations as LABEL=ARGS (extra arguments of berth serve)")
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=60.0)
    parser.add_argument("--no-baseline", action="store_true", help="measure berth only")
    parser.add_argument("--no-setup", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.models) - set(MODELS)
    if unknown:
        parser.error(f"unknown models: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, serving._on_signal)
    started = time.monotonic()
    try:
        result = measure(args)
    finally:
        serving.stop_all()
    result["note"] = args.note
    result["command"] = "python -m bench.request_path " + shlex.join(argv if argv is not None else sys.argv[1:])
    result["minutes"] = round((time.monotonic() - started) / 60, 1)
    path = RESULTS / "request_path.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[args.label] = result
    path.write_text(json.dumps(data, indent=1) + "\n")
    (RESULTS / "request_path.md").write_text(render(data))
    serving.log(f"wrote {path.relative_to(ROOT)} and request_path.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
