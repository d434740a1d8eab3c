"""Rows per second of ``berth predict --engine local|ray|dask`` on one synthetic Parquet dataset, side by side.

    .venv/bin/python bench/batch_engines.py [--rows 10000000] [--files 10] [--engines local,ray,dask]
                                            [--chunk-size 10000] [--output bench/results/batch_engines.md]

The dataset is made here: ``--rows`` iris-like rows (four float features drawn around the three species' means
with their spreads, seeded) in ``--files`` Parquet files of row groups of 250,000 rows. The model is a
LogisticRegression fitted on iris, saved as a berth bundle (skops). Each engine scores the whole dataset with
the command's defaults (partitions of 1,000,000 rows, chunks of ``--chunk-size``), through
:func:`berth.deploy.distributed_batch.predict_dataset`, the function behind ``berth predict --engine``.

Times: *startup* is starting the engine's local cluster (``ray.init`` / a ``distributed.LocalCluster`` of one
worker process per core), *scoring* is the call (planning, workers loading the model, scoring, the driver
writing and publishing the parts), and the rate is rows / scoring time; the end-to-end rate counts startup too.
Every engine's output is checked equal to the local engine's before the table is written.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import berth
from berth.deploy.distributed_batch import ModelSpec, predict_dataset

ROOT = Path(__file__).resolve().parents[1]
ROW_GROUP = 250_000


@dataclass
class Run:
    engine: str
    startup_s: float
    scoring_s: float
    rows: int

    @property
    def rate(self) -> float:
        return self.rows / self.scoring_s

    @property
    def end_to_end_rate(self) -> float:
        return self.rows / (self.startup_s + self.scoring_s)


def make_dataset(directory: Path, rows: int, files: int, seed: int = 0) -> None:
    """Iris-like rows: each row's class drawn at random, its features normal around that class's means."""
    X, y = load_iris(return_X_y=True, as_frame=True)
    means = X.groupby(y).mean().to_numpy()
    spreads = X.groupby(y).std().to_numpy()
    generator = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    per_file = -(-rows // files)
    for index, start in enumerate(range(0, rows, per_file)):
        count = min(per_file, rows - start)
        species = generator.integers(0, 3, count)
        values = generator.normal(means[species], spreads[species]).clip(0.1)
        table = pa.table({name: values[:, i] for i, name in enumerate(X.columns)})
        pq.write_table(table, directory / f"part-{index:03d}.parquet", row_group_size=ROW_GROUP)


@contextmanager
def engine_cluster(engine: str) -> Iterator[str | None]:
    """The engine's local cluster, started before the clock of the scoring starts; yields its address."""
    if engine == "ray":
        import ray

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
        try:
            yield None
        finally:
            ray.shutdown()
    elif engine == "dask":
        from distributed import LocalCluster

        with LocalCluster(n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            yield cluster.scheduler_address
    else:
        yield None


def measure(engine: str, spec: ModelSpec, dataset: Path, output: Path, chunk_size: int) -> Run:
    from berth.deploy.distributed_batch import ScoreOptions

    started = time.perf_counter()
    with engine_cluster(engine) as address:
        ready = time.perf_counter()
        result = predict_dataset(spec, str(dataset), str(output), engine=engine, address=address,
                                 options=ScoreOptions(chunk_size=chunk_size))
        done = time.perf_counter()
    print(f"{engine}: {result.rows} rows, startup {ready - started:.1f} s, scoring {done - ready:.1f} s", flush=True)
    return Run(engine, ready - started, done - ready, result.rows)


def render(runs: list[Run], rows: int, files: int, chunk_size: int, generate_s: float, load: float) -> str:
    local = next((r for r in runs if r.engine == "local"), None)
    lines = [
        "# Batch scoring engines",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/batch_engines.py --rows {rows} --files {files} "
        f"--chunk-size {chunk_size}`: Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores. {rows:,} iris-like rows (4 float64 features) in {files} Parquet files "
        f"(row groups of {ROW_GROUP:,}), made in {generate_s:.1f} s; LogisticRegression bundle (skops); "
        "partitions of 1,000,000 rows; output a directory of Parquet parts (row number + prediction). "
        "Every engine's output was checked equal to the local engine's. "
        f"Load average when the run started: {load:.1f} (other work on the machine slows every engine).",
        "",
        "| engine | startup s | scoring s | rows/s (scoring) | vs local | rows/s (with startup) | vs local |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        ratio = f"{run.rate / local.rate:.2f}" if local else "-"
        ratio_all = f"{run.end_to_end_rate / local.end_to_end_rate:.2f}" if local else "-"
        lines.append(f"| {run.engine} | {run.startup_s:.1f} | {run.scoring_s:.1f} | {run.rate:,.0f} | {ratio} | "
                     f"{run.end_to_end_rate:,.0f} | {ratio_all} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--engines", default="local,ray,dask")
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "batch_engines.md")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    load = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="berth-bench-batch-"))
    try:
        started = time.perf_counter()
        make_dataset(scratch / "rows", args.rows, args.files)
        generate_s = time.perf_counter() - started
        X, y = load_iris(return_X_y=True, as_frame=True)
        berth.save(LogisticRegression(max_iter=1000).fit(X, y), scratch / "model", sample=X.head(20),
                   name="iris-logreg")
        spec = ModelSpec(str(scratch / "model"))
        runs, reference = [], None
        for engine in args.engines.split(","):
            output = scratch / f"out-{engine}"
            runs.append(measure(engine, spec, scratch / "rows", output, args.chunk_size))
            scored = pd.read_parquet(output)
            if reference is None:
                reference = scored
            else:
                pd.testing.assert_frame_equal(scored, reference)
            shutil.rmtree(output)
        report = render(runs, args.rows, args.files, args.chunk_size, generate_s, load)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
