"""Monitoring at scale: a report over 10,000,000 logged predictions (1,000,000 labelled), from local disk and
from a loopback S3 store, and the engine choice measured (rows held in pandas vs one streaming pass of counts).

    .venv/bin/python -m bench.monitoring_scale                       # writes bench/results/monitoring_scale.md
    .venv/bin/python -m bench.monitoring_scale --rows 2000000        # smaller

The log is written in the server's schema (``records_to_table`` on a template batch, then values generated
with NumPy: iris-like features, the last fifth of the day with petal length shifted, latencies, 32-hex request
ids, class probabilities), in files of ``--file-rows`` rows over the last 24 hours, as many servers' flushes
would be after compaction of an hour's files. Each measurement runs ``build_report`` in a fresh subprocess and
reads that process's peak RSS (``ru_maxrss``) and wall time: the report as ``berth monitor report`` computes it
(drift, quality, timeline, traffic, performance), without rendering HTML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "monitoring_scale"
RESULTS = ROOT / "bench" / "results" / "monitoring_scale.md"

MEASURE = r'''
import json, sys, time, datetime as dt
from berth.monitoring.report import build_report
from berth.monitoring.store import Store
root, stream_rows = sys.argv[1], int(sys.argv[2])
started = time.perf_counter()
report = build_report("iris", since=dt.datetime.now(dt.UTC) - dt.timedelta(hours=25), store=Store(root),
                      stream_rows=stream_rows)
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "rss_mb": peak / 1024,
                  "rows": report["rows"], "labelled": report["performance"]["labelled"],
                  "drifted": report["drift"]["drifted_features"], "streamed": bool(report.get("streamed")),
                  "first_drift": (report.get("timeline") or {}).get("first_drift"),
                  "accuracy": (report["performance"].get("overall") or {}).get("accuracy")}))
'''


LABELLED = r'''
import json, sys, time, datetime as dt
from berth.monitoring.report import labelled_performance, version_info
from berth.monitoring.store import Store
store = Store(sys.argv[1])
info = version_info(store, "iris", None)
started = time.perf_counter()
result = labelled_performance(store, "iris", dt.datetime.now(dt.UTC) - dt.timedelta(hours=25), None, None, True,
                              info["signature"]["outputs"]["classes"])
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "rss_mb": peak / 1024, "labelled": result["labelled"],
                  "accuracy": result["overall"]["accuracy"], "buckets": len(result["buckets"])}))
'''

# The labelled part's join as pyarrow's Acero engine does it (berth's previous engine, kept here to measure
# the choice): the labels as the hash join's build side, the log streamed through it. Acero carries no list
# column, so the class probabilities are sliced into one column per class for every logged row.
ACERO = r'''
import json, sys, time, datetime as dt
import pyarrow as pa, pyarrow.acero as acero, pyarrow.compute as pc
from berth.monitoring.store import Store
store = Store(sys.argv[1])
labels = store.feedback("iris").select(["request_id", "row", "label"])
started = time.perf_counter()
dataset, condition = store.window("iris", None, None, served_only=True)
schema = dataset.schema
build = labels.cast(pa.schema([schema.field("request_id"), schema.field("row"), pa.field("label", pa.string())]))
fixed = pc.list_slice(pc.field("probabilities"), 0, 3, return_fixed_size_list=True)
outputs = {"time": pc.field("time"), "request_id": pc.field("request_id"), "row": pc.field("row"),
           "prediction": pc.field("prediction"), **{f"p{i}": pc.list_element(fixed, i) for i in range(3)}}
scan = acero.Declaration("scan", acero.ScanNodeOptions(dataset, columns=["time", "request_id", "row", "prediction",
                                                                        "probabilities"], fragment_readahead=2,
                                                       batch_readahead=2))
log = acero.Declaration.from_sequence([scan, acero.Declaration("project", acero.ProjectNodeOptions(
    list(outputs.values()), list(outputs)))])
join = acero.Declaration("hashjoin", acero.HashJoinNodeOptions(
    "inner", left_keys=["request_id", "row"], right_keys=["request_id", "row"],
    left_output=["time", "prediction", "p0", "p1", "p2"], right_output=["label"]),
    inputs=[log, acero.Declaration("table_source", acero.TableSourceNodeOptions(build))])
joined = join.to_table(use_threads=True).sort_by("time")
hits = pc.equal(pc.cast(pc.cast(joined["prediction"], pa.int64()), pa.string()), joined["label"])
hours = pc.floor_temporal(joined["time"], unit="hour")
seconds = time.perf_counter() - started
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "rss_mb": peak / 1024, "labelled": joined.num_rows,
                  "accuracy": pc.mean(pc.cast(hits, pa.int8())).as_py(), "buckets": len(pc.unique(hours))}))
'''


def log(message: str) -> None:
    print(f"[monitoring-scale] {message}", file=sys.stderr, flush=True)


def make_bundle(work: Path) -> Path:
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)
    bundle = work / "iris"
    berth.save(model, bundle, sample=X.head(20), reference=X, name="iris", metrics={"accuracy": 0.96},
               overwrite=True)
    return bundle


def fill(bundle: Path, root: Path, rows: int, labelled: int, file_rows: int) -> dict[str, float]:
    """``rows`` logged predictions over the last 24 hours and ``labelled`` labels, in the log's schema."""
    import pyarrow as pa
    from sklearn.datasets import load_iris

    import berth
    from berth.monitoring.log import PendingRecord, records_to_table, version_info
    from berth.monitoring.store import FEEDBACK, Store

    model = berth.load(bundle)
    store = Store(root)
    store.save_version("iris", "v1", version_info(model, "v1"))
    X, _ = load_iris(return_X_y=True)
    template = records_to_table([PendingRecord(time.time(), "iris", "v1", "t", [X[0].tolist()], np.array([0]),
                                               np.array([[1.0, 0.0, 0.0]]), 0.001, model)])
    rng = np.random.default_rng(0)
    end = dt.datetime.now(dt.UTC).timestamp()
    start = end - 24 * 3600
    started = time.perf_counter()
    label_ids: list[np.ndarray] = []
    label_values: list[np.ndarray] = []
    for offset in range(0, rows, file_rows):
        n = min(file_rows, rows - offset)
        times = start + (np.arange(offset, offset + n) / rows) * (end - start - 1)
        features = X[rng.integers(0, len(X), n)] + rng.normal(0, 0.05, (n, 4))
        shifted = times > start + 0.8 * (end - start)
        features[shifted, :3] += (1.5, 1.0, 3.5)  # three of four features: dataset drift
        classes = np.clip(np.round(features[:, 3] * 1.2), 0, 2)
        probabilities = np.full((n, 3), 0.05)
        probabilities[np.arange(n), classes.astype(int)] = 0.9
        ids = np.char.add(f"{offset:012x}", np.char.zfill(np.char.mod("%x", np.arange(n)), 20))
        arrays = {
            "time": pa.array((times * 1e6).astype("int64")).cast(pa.timestamp("us", tz="UTC")),
            "version": pa.array(["v1"] * n, pa.string()),
            "request_id": pa.array(ids, pa.string()),
            "row": pa.array(np.zeros(n, np.int32)),
            "latency_ms": pa.array(rng.gamma(2.0, 1.5, n)),
        }
        for i, name in enumerate(f for f in template.column_names if f.startswith("feature.")):
            arrays[name] = pa.array(features[:, i])
        arrays["prediction"] = pa.array(classes)
        arrays["probabilities"] = pa.FixedSizeListArray.from_arrays(pa.array(probabilities.ravel()), 3).cast(
            pa.list_(pa.float64()))
        arrays["coerced"] = pa.array([[]] * n, pa.list_(pa.string()))
        store.write("iris", pa.table(arrays))
        take = int(labelled * n / rows)
        chosen = rng.choice(n, take, replace=False)
        truth = classes[chosen].copy()
        wrong = rng.random(take) < 0.1
        truth[wrong] = (truth[wrong] + 1) % 3
        label_ids.append(ids[chosen])
        label_values.append(truth.astype(int).astype(str))
    ids = np.concatenate(label_ids)
    labels = pa.table({"time": pa.array([dt.datetime.now(dt.UTC)] * len(ids), pa.timestamp("us", tz="UTC")),
                       "request_id": pa.array(ids, pa.string()), "row": pa.array(np.zeros(len(ids), np.int32)),
                       "label": pa.array(np.concatenate(label_values), pa.string())})
    for part in range(0, len(ids), 250_000):
        store.write("iris", labels.slice(part, 250_000), kind=FEEDBACK)
    size = sum(Path(f).stat().st_size for f in Path(root).rglob("*.parquet"))
    return {"seconds": time.perf_counter() - started, "files": len(store.files("iris")), "mb": size / 1e6,
            "labelled": len(ids)}


def measure(root: str, stream_rows: int, env: dict[str, str] | None = None, script: str = MEASURE,
            python: str = sys.executable) -> dict[str, Any]:
    load = os.getloadavg()[0]
    result = subprocess.run([python, "-c", script, root, str(stream_rows)], capture_output=True,
                            text=True, timeout=3600, env={**os.environ, **(env or {})}, cwd=ROOT)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    answer["load"] = (load + os.getloadavg()[0]) / 2  # the 1-minute load average before and after
    return answer


def s3_measurement(local: Path) -> dict[str, Any]:
    """The same report from a loopback S3 server (moto), the log uploaded as written."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {"BERTH_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
        os.environ.update(env)
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
        fs.mkdir("bench")
        started = time.perf_counter()
        fs.put(str(local) + "/", "bench/logs/", recursive=True)
        upload = time.perf_counter() - started
        result = measure("s3://bench/logs", 250_000, env)
        result["upload_seconds"] = upload
        return result
    finally:
        server.stop()


def render(args: argparse.Namespace, filled: dict[str, float], runs: dict[str, dict[str, Any]]) -> str:
    def row(name: str, what: str) -> str:
        r = runs.get(name)
        if r is None:
            return f"| {what} | not run | | | | |"
        if "error" in r:
            return f"| {what} | failed: {r['error']} | | | | |"
        return (f"| {what} | {r['rows']:,} ({r['labelled']:,} labelled) | {r['seconds']:.1f} s | "
                f"{r['rss_mb']:,.0f} MB | {r['load']:.1f} | {', '.join(r['drifted']) or 'none'}; first at "
                f"{(r.get('first_drift') or '-')[:16]}; accuracy {r['accuracy']:.3f} |")

    def part(name: str, what: str) -> str:
        r = runs.get(name)
        if r is None or "error" in r:
            return f"| {what} | {'not run' if r is None else 'failed: ' + r['error']} | | | | |"
        return (f"| {what} | {r['labelled']:,} labelled of {args.rows:,} | {r['seconds']:.1f} s | "
                f"{r['rss_mb']:,.0f} MB | {r['load']:.1f} | accuracy {r['accuracy']:.3f} over {r['buckets']} "
                "hours |")

    lines = [
        "# Monitoring at scale",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores (shared "
        f"with other work), Python {platform.python_version()}; `python -m bench.monitoring_scale --rows "
        f"{args.rows} --labelled {args.labelled}`.",
        "",
        f"The log: {args.rows:,} predictions over 24 hours (iris, 4 features; three shifted in the last "
        f"fifth: sepal length, sepal width, petal length), {filled['labelled']:,.0f} labels; "
        f"{filled['files']:.0f} Parquet files of {args.file_rows:,} rows, "
        f"{filled['mb']:,.0f} MB (written in {filled['seconds']:.0f} s). Each figure is `build_report` in a fresh "
        "process: wall time and that process's peak RSS. Targets: 10,000,000 rows (1,000,000 labelled) in <= 10 s "
        "and <= 1 GB from local disk.",
        "",
        "| engine / store | rows | time | peak RSS | load | found |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        row("stream-local", "the report: streaming counts (pyarrow row groups + NumPy), labels joined by DuckDB, "
                            "local disk"),
        row("stream-s3", "the same, loopback S3 (moto)"),
        row("pandas-small", f"rows held in pandas (the former path), {args.compare_rows:,}-row window"),
        row("stream-small", f"streaming counts, the same {args.compare_rows:,}-row window"),
        "",
        "The labelled part alone (latest label per request id and row, joined to every logged answer, then the "
        "metrics overall and per hour), berth's engine beside the former one in the same run (berth's timed with "
        "reading the labels, the Acero join after it):",
        "",
        "| engine | rows | time | peak RSS | load | found |",
        "| --- | --- | ---: | ---: | ---: | --- |",
        part("labels-berth", "berth: DuckDB join (Parquet read by DuckDB), metrics in NumPy"),
        part("labels-acero", "the former engine: pyarrow Acero hash join built on the labels (join and accuracy "
                             "only)"),
        "",
    ]
    if "stream-s3" in runs and "upload_seconds" in runs["stream-s3"]:
        lines.append(f"Upload of the log to the loopback S3 server: {runs['stream-s3']['upload_seconds']:.0f} s "
                     "(moto keeps objects in the benchmark's memory; a real object store is slower per request and "
                     "faster per byte).")
        lines.append("")
    lines += [
        "**Engine choice, by measurement.** Drift, quality and traffic: pyarrow + NumPy. The report streams the "
        "window once, Parquet row group by row group with two read ahead (memory bounded by the pieces in "
        "flight; pyarrow's own dataset scanner buffered most of the log when the counts fell behind: 850 MB), "
        "and keeps counts per feature, value cell and time bucket; a lookup table places each value among the "
        "reference's evaluation points in a few vectorised passes (exactly what a binary search gives, ~5x "
        "faster on bell-shaped data). Labels: DuckDB, which joins the latest labels to every logged answer with "
        "its own Parquet reader and hash join (an fsspec store is registered as its filesystem). "
        f"{engine_verdict(runs)} Before both, an `isin` filter per file rebuilt a hash set of every labelled id "
        "for each file (11.9 s of the former 66 s). The champion/challenger detection is one Acero aggregation "
        "instead of a 10,000,000-row pandas frame, and the allocator's free memory is returned between the passes "
        "so their peaks do not stack. Windows up to 250,000 rows keep the in-memory path (exact KS at every "
        "value); above, the streaming path (tests/monitoring/test_scan.py checks both give the same verdicts, "
        "tests/monitoring/test_labels.py that the join gives what a pandas merge gives).",
        "",
        f"**Targets.** {verdict(runs.get('stream-local'))} The machine is shared with other sessions (the load "
        f"column: 1-minute load average on {os.cpu_count()} cores around each figure), so compare rows within one "
        "run, not across runs.",
        "",
    ]
    return "\n".join(lines)


def engine_verdict(runs: dict[str, dict[str, Any]]) -> str:
    berth, acero = runs.get("labels-berth"), runs.get("labels-acero")
    if not berth or not acero or "error" in berth or "error" in acero:
        return "The former engine was not measured in this run."
    return (f"In this run the Acero join alone took {acero['seconds'] / berth['seconds']:.1f}x the time of berth's "
            f"whole labelled part and {acero['rss_mb'] / berth['rss_mb']:.1f}x its peak memory (Acero carries no "
            "list column through a join: the class probabilities had to be sliced for all 10,000,000 rows).")


def verdict(run: dict[str, Any] | None) -> str:
    if not run or "error" in run:
        return "Not measured."
    met = run["seconds"] <= 10 and run["rss_mb"] <= 1024
    return (f"{'Met' if met else 'NOT met'} at {run['rows']:,} rows: {run['seconds']:.1f} s (target 10 s), "
            f"{run['rss_mb']:,.0f} MB peak (target 1,024 MB).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--labelled", type=int, default=1_000_000)
    parser.add_argument("--file-rows", type=int, default=100_000)
    parser.add_argument("--compare-rows", type=int, default=1_000_000)
    parser.add_argument("--no-s3", action="store_true")
    args = parser.parse_args()
    import shutil

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    bundle = make_bundle(WORK)
    local = WORK / "logs"
    log(f"writing {args.rows:,} rows")
    filled = fill(bundle, local, args.rows, args.labelled, args.file_rows)
    log(f"wrote {filled['files']:.0f} files, {filled['mb']:.0f} MB in {filled['seconds']:.0f} s")
    runs: dict[str, dict[str, Any]] = {}
    runs["stream-local"] = measure(str(local), 250_000)
    log(f"streaming, local: {runs['stream-local']}")
    runs["labels-berth"] = measure(str(local), 0, script=LABELLED)
    runs["labels-acero"] = measure(str(local), 0, script=ACERO)
    log(f"labelled part, berth / acero: {runs['labels-berth']} / {runs['labels-acero']}")
    small = WORK / "small"
    fill(bundle, small, args.compare_rows, args.compare_rows // 10, args.file_rows)
    runs["pandas-small"] = measure(str(small), 10 ** 12)
    runs["stream-small"] = measure(str(small), 0)
    log(f"pandas vs streaming at {args.compare_rows:,}: {runs['pandas-small']} / {runs['stream-small']}")
    if not args.no_s3:
        runs["stream-s3"] = s3_measurement(local)
        log(f"streaming, S3: {runs['stream-s3']}")
    RESULTS.write_text(render(args, filled, runs) + "\n")
    log(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
