"""The throughput cost of shadowing (and of a canary) on a real server: interleaved wrk runs, c=64, single rows.

    .venv/bin/python -m bench.shadow [--rounds 3] [--duration 10] [--workers 1] [--output bench/results/shadow.md]

Three ``berth serve`` processes run side by side on the same iris LogisticRegression bundle (prediction log on,
as by default): ``baseline`` alone, ``shadow`` with ``--shadow CANDIDATE`` (every request copied to a second
LogisticRegression), ``shadow 10%`` with ``--shadow CANDIDATE=0.1``, and ``canary`` with ``--canary
CANDIDATE=10``. wrk drives one at a time (one thread, 64 connections, single-row JSON POSTs to /predict) in
rounds, each round running every configuration once in turn, so the machine's other load (it is shared) falls on
all alike; the table gives each configuration's throughput and latency as the median over rounds, and its ratio
to the baseline of the same round (median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.serving.loadgen import run_wrk
from support.server_process import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "bench" / "results" / "shadow.md"
ROW = json.dumps({"features": [5.1, 3.5, 1.4, 0.2]})


def bundles(directory: Path) -> tuple[Path, Path]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    paths = []
    for name, c in (("baseline", 1.0), ("candidate", 0.5)):
        path = directory / name
        berth.save(LogisticRegression(C=c, max_iter=1000).fit(X, y), path, sample=X.head(20), reference=X,
                   name="iris")
        paths.append(path)
    return paths[0], paths[1]


def outcome(line: str) -> str:
    return line.split('outcome="')[1].split('"')[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    started, t0 = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="berth-bench-shadow-"))
    base, cand = bundles(work)
    configs = {"baseline": [], "shadow": ["--shadow", str(cand)], "shadow 10%": ["--shadow", f"{cand}=0.1"],
               "canary 10%": ["--canary", f"{cand}=10"]}
    servers = {name: ServerProcess(str(base), "--workers", str(args.workers), "--log-level", "warning", *extra,
                                   env={"BERTH_MONITOR_DIR": str(work / name.replace(" ", "-").replace("%", ""))})
               for name, extra in configs.items()}
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    shadow_counts: dict[str, str] = {}
    try:
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():
            run_wrk(server.url + "/predict", ROW, 16, 3)  # warm-up
        for round_number in range(args.rounds):
            for name, server in servers.items():
                result = run_wrk(server.url + "/predict", ROW, args.connections, args.duration)
                runs[name].append(result)
                print(f"round {round_number + 1} {name}: {result['rps']:.0f} req/s, p50 {result['p50_ms']} ms, "
                      f"p99 {result['p99_ms']} ms, non-2xx {result['non_2xx']}", file=sys.stderr, flush=True)
        for name, server in servers.items():
            text = httpx.get(server.url + "/metrics", timeout=10).text
            shadow_counts[name] = ", ".join(
                f"{outcome(line)} {float(line.rsplit(' ', 1)[1]):,.0f}"
                for line in text.splitlines() if line.startswith("berth_shadow_requests_total{")) or "-"
    finally:
        for server in servers.values():
            server.stop()
    lines = [
        "# The cost of shadowing",
        "",
        f"Written by `python -m bench.shadow` on {started} ({time.monotonic() - t0:.0f} s). Machine: "
        f"{os.cpu_count()} cores (shared with other work), Python {platform.python_version()}.",
        "",
        f"`berth serve iris-logreg --workers {args.workers}` (prediction log on), wrk with 1 thread and "
        f"{args.connections} connections sending single-row `POST /predict`, {args.duration} s per run, "
        f"{args.rounds} interleaved rounds. Ratios are to the baseline of the same round (median over rounds).",
        "",
        "| configuration | req/s | ratio | p50 ms | ratio | p99 ms | ratio | failed | shadow calls |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, results in runs.items():
        def median(key: str, results: list[dict] = results) -> float:
            return statistics.median(r[key] for r in results)

        def ratio(key: str, results: list[dict] = results) -> float:
            return statistics.median(r[key] / b[key] for r, b in zip(results, runs["baseline"], strict=True))

        failed = sum(r["non_2xx"] + r["socket_errors"] for r in results)
        lines.append(f"| {name} | {median('rps'):,.0f} | {ratio('rps'):.2f} | {median('p50_ms'):.2f} | "
                     f"{ratio('p50_ms'):.2f} | {median('p99_ms'):.2f} | {ratio('p99_ms'):.2f} | {failed} | "
                     f"{shadow_counts.get(name, '-')} |")
    per_round = {name: ", ".join(format(r["rps"], ".0f") for r in results) for name, results in runs.items()}
    lines += ["", "Raw runs (req/s per round): " + "; ".join(f"{k}: {v}" for k, v in per_round.items()), ""]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
