"""Monitoring benchmark: report time on 1,000,000 logged predictions, and serving throughput with the
prediction log on vs off, measured side by side in one run.

    .venv/bin/python -m bench.monitoring                 # writes bench/results/monitoring.md
    .venv/bin/python -m bench.monitoring --rows 200000 --duration 5 --rounds 1    # a quicker run

1. Report: 1,000,000 rows of iris-like traffic (the last fifth with petal length shifted) are written through
   the log's own conversion (``records_to_table``) in flushes of 5,000 rows, as a server would; 10 % of them
   get labels. Then ``build_report`` over the whole log and ``render_html`` are timed, also after ``compact``.
2. Throughput: ``berth serve`` of the iris forest (subprocess, free port, default workers) driven by wrk
   (``bench/serving``'s ``post.lua`` and ``run_wrk``), alternating logging on and off for ``--rounds`` rounds
   so that background noise hits both alike; the best req/s of each is compared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.serving.loadgen import run_wrk
from bench.serving.procs import Server, free_port, stop_all, wait_ready

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "monitoring.md"
LOGS = ROOT / "bench" / ".work" / "monitoring" / "logs"  # git-ignored, kept for a look after the run
FLUSH_ROWS = 5000


def make_bundle(work: Path) -> tuple[Path, Any]:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    bundle = work / "iris"
    berth.save(model, bundle, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               overwrite=True)
    return bundle, X


def fill_log(bundle: Path, X: Any, root: Path, rows: int) -> dict[str, float]:
    """Write ``rows`` logged predictions through the log's conversion, in server-sized flushes."""
    import berth
    from berth.monitoring.feedback import record_feedback
    from berth.monitoring.log import PendingRecord, PredictionLog
    from berth.monitoring.store import Store

    model = berth.load(bundle)
    store = Store(root)
    log = PredictionLog(store, max_queue=rows + 1, batch_size=FLUSH_ROWS)
    rng = np.random.default_rng(0)
    data = X.to_numpy()[rng.integers(0, len(X), rows)]
    data[int(rows * 0.8):, 2] += 2 * X.iloc[:, 2].std()
    predictions = model.predict(data[: min(rows, 20000)].tolist())
    predictions = np.resize(predictions, rows)
    start = time.time() - 23 * 3600
    step = 23 * 3600 / rows
    started = time.perf_counter()
    per_request = 10  # requests of 10 rows: 100,000 requests for a million rows
    for i in range(0, rows, per_request):
        log.offer(PendingRecord(start + i * step, "iris", "v1", f"r{i}", data[i:i + per_request].tolist(),
                                predictions[i:i + per_request], None, 0.002, model))
        if len(log) >= FLUSH_ROWS // per_request:
            log.flush()
    log.flush()
    write_s = time.perf_counter() - started
    labelled = [{"request_id": f"r{i}", "label": [int(p) for p in predictions[i:i + per_request]]}
                for i in range(0, rows, per_request * 10)]
    record_feedback(store, "iris", labelled)
    return {"write_s": write_s, "files": len(store.files("iris"))}


def time_report(root: Path) -> dict[str, float]:
    from berth.monitoring.report import build_report, render_html
    from berth.monitoring.store import Store

    store = Store(root)
    started = time.perf_counter()
    report = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(days=2), store=store)
    built = time.perf_counter() - started
    html = render_html(report)
    rendered = time.perf_counter() - started - built
    return {"rows": report["rows"], "build_s": built, "html_s": rendered, "html_kb": len(html) / 1024,
            "drifted": ", ".join(report["drift"]["drifted_features"]),
            "labelled": report["performance"]["labelled"]}


def throughput(bundle: Path, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    body = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]})
    runs = []
    berth_command = str(Path(sys.executable).parent / "berth")
    for round_index in range(args.rounds):
        for logging_on in (True, False):
            port = free_port()
            flag = "--log-predictions" if logging_on else "--no-log-predictions"
            env = {**os.environ, "BERTH_MONITOR_DIR": str(work / "serve-log")}
            server = Server([berth_command, "serve", str(bundle), "--port", str(port), flag, "--log-level", "warning"],
                            env=env, cwd=ROOT, log_path=LOGS / f"serve-{round_index}-{flag}.log")
            server.start()
            try:
                url = f"http://127.0.0.1:{port}"
                wait_ready(server, url + "/predict", "POST", body.encode(), 120)
                run_wrk(url + "/predict", body, args.connections, 3)  # warm-up
                result = run_wrk(url + "/predict", body, args.connections, args.duration, server.proc.pid)
            finally:
                server.stop()
            runs.append({"round": round_index, "logging": logging_on, "rps": result["rps"],
                         "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                         "errors": result["non_2xx"] + result["socket_errors"], "cpu": result["cpu_cores"],
                         "cpu_ms": 1000 * result["cpu_cores"]["server"] * result["seconds"]
                         / max(result["requests"], 1)})
            print(f"round {round_index} logging {'on ' if logging_on else 'off'}: {result['rps']:.0f} req/s, "
                  f"p50 {result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms", flush=True)
    return runs


def render(report: dict[str, Any], fill: dict[str, float], compacted: dict[str, float], runs: list[dict[str, Any]],
           args: argparse.Namespace) -> str:
    on = max((r for r in runs if r["logging"]), key=lambda r: r["rps"])
    off = max((r for r in runs if not r["logging"]), key=lambda r: r["rps"])
    loss = 1 - on["rps"] / off["rps"]
    cpu_on = float(np.median([r["cpu_ms"] for r in runs if r["logging"]]))
    cpu_off = float(np.median([r["cpu_ms"] for r in runs if not r["logging"]]))
    lines = [
        "# Monitoring benchmark",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; `{' '.join(['python -m bench.monitoring', *sys.argv[1:]])}`.",
        "",
        "## Report on the prediction log",
        "",
        f"{report['rows']:,} logged predictions (iris, 4 features, the last fifth with petal length shifted), "
        f"{report['labelled']:,} of them labelled, written in flushes of {FLUSH_ROWS:,} rows "
        f"({fill['files']:.0f} Parquet files; writing took {fill['write_s']:.1f} s in one thread, conversion "
        "included).",
        "",
        "| log layout | build_report (drift, quality, performance, traffic) | render_html | HTML size |",
        "| --- | --- | --- | --- |",
        f"| {fill['files']:.0f} files as flushed | {report['build_s']:.2f} s | {report['html_s']:.2f} s | "
        f"{report['html_kb']:.0f} KB |",
        f"| after `compact` (one file per day) | {compacted['build_s']:.2f} s | {compacted['html_s']:.2f} s | "
        f"{compacted['html_kb']:.0f} KB |",
        "",
        f"Drift found: {report['drifted'] or 'none'} (the window mixes 80 % normal and 20 % shifted rows).",
        "",
        "## Serving throughput, prediction log on vs off",
        "",
        f"`berth serve` (default workers) of a RandomForestClassifier(100) on iris; wrk `-t1 -c{args.connections} "
        f"-d{args.duration}s`, one-row `/predict` bodies; on and off alternate, {args.rounds} round(s).",
        "",
        "| round | logging | req/s | p50 ms | p99 ms | server CPU ms / request | cores: server / wrk / other "
        "| errors |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[f"| {r['round']} | {'on' if r['logging'] else 'off'} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
          f"{r['p99_ms']:.2f} | {r['cpu_ms']:.3f} | {r['cpu']['server']:.2f} / {r['cpu']['wrk']:.2f} / "
          f"{r['cpu']['other']:.2f} | {r['errors']} |"
          for r in runs],
        "",
        f"**Best of each: {on['rps']:.0f} req/s with logging vs {off['rps']:.0f} without: "
        f"{'a loss' if loss >= 0 else 'a gain'} of {abs(loss):.1%}** (goal: under 10 % loss). Server CPU per "
        f"request (median of each; less sensitive to other programs' load than req/s): {cpu_on:.3f} ms with "
        f"logging vs {cpu_off:.3f} ms without: {cpu_on / cpu_off - 1:+.1%}.",
        "",
        f"Load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other sessions share this "
        "machine; alternating on/off spreads their noise over both).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="berth-bench-monitoring-"))
    try:
        bundle, X = make_bundle(work)
        print(f"writing {args.rows:,} logged predictions ...", flush=True)
        fill = fill_log(bundle, X, work / "log", args.rows)
        report = time_report(work / "log")
        print(f"report: {report}", flush=True)
        from berth.monitoring.store import Store

        Store(work / "log").compact("iris", before=dt.date.today() + dt.timedelta(days=2))
        compacted = time_report(work / "log")
        print(f"report after compact: {compacted}", flush=True)
        runs = throughput(bundle, work, args)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(render(report, fill, compacted, runs, args))
        print(f"wrote {args.output}")
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
