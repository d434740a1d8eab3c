"""Registration time of a 10 MB bundle and alias lookup latency, per database x artifact store.

    .venv/bin/python -m bench.registry [--mb 10] [--runs 5] [--lookups 2000] [--output bench/results/registry.md]

The bundle is a python-flavor model holding ``--mb`` MB of random float64 weights (incompressible, generated
here). For each pair (SQLite | PostgreSQL) x (local files | loopback S3), ``Registry.register`` of a fresh copy
(a distinct digest each run, so every run really uploads) is timed ``--runs`` times and compared, in the same run,
with the baseline a plain script would pay for the same bytes: copy the files to the store and sha256 them once.
Registration does more by design (verify the source, upload, read the stored copy back and hash it, commit), so
the ratio says what the integrity guarantees cost. ``alias_version`` (the query every alias-following server
polls) is timed ``--lookups`` times per database. PostgreSQL runs from Debian's binaries in a temporary
directory (support/postgres.py); S3 is moto's server on loopback (support/s3.py). Either is skipped, and said
so, if absent.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import berth
from berth import storage
from berth.registry import Registry
from support.postgres import missing_reason, running_postgres
from support.s3 import DUMMY_AWS_ENV, ENDPOINT_ENV, S3, UNSET_AWS_ENV, loopback_s3, missing_modules

ROOT = Path(__file__).resolve().parents[1]


class Weights:
    """A model that is mostly weights: predicts the dot product of each row with the first weights."""

    def __init__(self, weights: np.ndarray, salt: int) -> None:
        self.weights = weights
        self.salt = salt

    def predict(self, rows: Any) -> np.ndarray:
        return np.asarray(rows) @ self.weights[:4]


def make_bundle(directory: Path, megabytes: float, salt: int) -> Path:
    rng = np.random.default_rng(salt)
    weights = rng.standard_normal(int(megabytes * 1024 * 1024 / 8))
    path = directory / f"bundle-{salt}"
    berth.save(Weights(weights, salt), path, sample=np.zeros((2, 4)), input="ndarray")
    return path


def baseline(bundle: Path, target: str) -> None:
    """What a plain script does: copy the bundle's files to the store, sha256 each once."""
    files = [p for p in bundle.rglob("*") if p.is_file()]
    if storage.is_remote(target):
        fs, root = storage.filesystem(target)
        for file in files:
            fs.put_file(str(file), f"{root}/{file.relative_to(bundle).as_posix()}")
    else:
        shutil.copytree(bundle, target)
    for file in files:
        with file.open("rb") as handle:
            hashlib.file_digest(handle, "sha256")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


@contextmanager
def s3_store() -> Iterator[str | None]:
    """A bucket on moto's loopback server (``support.s3``), with berth and s3fs pointed at it; None without moto."""
    missing = missing_modules()
    if missing:
        print(f"S3 skipped: missing {', '.join(missing)}", file=sys.stderr)
        yield None
        return
    with loopback_s3() as endpoint:
        os.environ.update({**DUMMY_AWS_ENV, ENDPOINT_ENV: endpoint, "NO_PROXY": "127.0.0.1,localhost"})
        for name in UNSET_AWS_ENV:
            os.environ.pop(name, None)
        bucket = S3(endpoint, "bench")
        bucket.fresh_fs().mkdir(bucket.bucket)
        yield bucket.url()


@contextmanager
def postgres() -> Iterator[str | None]:
    reason = missing_reason()
    if reason:
        print(f"PostgreSQL skipped: {reason}", file=sys.stderr)
        yield None
        return
    with running_postgres() as server:
        yield server.create_database("bench")


def measure(url: str, artifacts: str, name: str, runs: int, scratch: Path, megabytes: float, lookups: int,
            salts: Iterator[int]) -> dict[str, Any]:
    registry = Registry(url, artifacts)
    registry.list_models()  # migrations outside the timing
    register_times, baseline_times = [], []
    for _ in range(runs):
        bundle = make_bundle(scratch, megabytes, salt=next(salts))
        copy_target = storage.join(artifacts, "baseline", uuid.uuid4().hex) if storage.is_remote(artifacts) \
            else str(scratch / "baseline" / uuid.uuid4().hex)
        baseline_times.append(timed(lambda b=bundle, t=copy_target: baseline(b, t)))
        register_times.append(timed(lambda b=bundle: registry.register(b, name)))
        shutil.rmtree(bundle)
    registry.set_alias(name, "production", 1)
    latencies = []
    for _ in range(lookups):
        started = time.perf_counter()
        registry.alias_version(name, "production")
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    registry.close()
    return {"register": statistics.median(register_times), "baseline": statistics.median(baseline_times),
            "lookup_median": statistics.median(latencies), "lookup_p99": latencies[int(len(latencies) * 0.99) - 1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/registry.md")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="berth-bench-") as temp, ExitStack() as stack:
        scratch = Path(temp)
        source = make_bundle(scratch, args.mb, salt=0)
        size = berth.inspect(source).size
        salts = itertools.count(1)
        s3 = stack.enter_context(s3_store())
        pg = stack.enter_context(postgres())
        databases = [("SQLite", f"sqlite:///{scratch / 'registry.db'}")] + ([("PostgreSQL", pg)] if pg else [])
        stores = [("local files", str(scratch / "artifacts"))] + ([("loopback S3", s3)] if s3 else [])
        for db_name, url in databases:
            for store_name, artifacts in stores:
                prefix = f"{artifacts}/{db_name.lower()}" if artifacts.startswith("s3://") else \
                    f"{artifacts}-{db_name.lower()}"
                print(f"measuring {db_name} + {store_name}...", file=sys.stderr)
                name = f"bench-{'s3' if prefix.startswith('s3://') else 'files'}"
                result = measure(url, prefix, name, args.runs, scratch, args.mb, args.lookups, salts)
                rows.append((db_name, store_name, result))
                print(f"  {result}", file=sys.stderr)

    lines = [
        "# Registry benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; `python -m bench.registry --mb {args.mb:g} --runs {args.runs} "
        f"--lookups {args.lookups}`.",
        "",
        f"Bundle: python flavor, {size / 1e6:.1f} MB of random float64 weights (one payload file + manifest). "
        "Baseline: copy the same files to the same store and sha256 them once (what a plain script pays). "
        "Registration = verify source (sha256) + upload + read the stored copy back and sha256 it + commit the "
        "version row. Medians of the runs; each run registers a new bundle (new digest), so every run uploads.",
        "",
        "| database | artifact store | register (s) | baseline copy+sha256 (s) | ratio | alias_version median (ms) "
        "| alias_version p99 (ms) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for db_name, store_name, r in rows:
        lines.append(f"| {db_name} | {store_name} | {r['register']:.3f} | {r['baseline']:.3f} | "
                     f"{r['register'] / r['baseline']:.2f}x | {r['lookup_median'] * 1e3:.2f} | "
                     f"{r['lookup_p99'] * 1e3:.2f} |")
    lines += ["", "The load average of the machine during the run matters: these are wall-clock figures."]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
