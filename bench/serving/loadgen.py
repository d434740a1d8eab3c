"""The load: wrk with one thread, posting one fixed JSON body, and where the CPU went while it ran."""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from bench.serving.common import LUA, WRK_TIMEOUT_S
from bench.serving.procs import busy_cpu_s, children_cpu_s, tree_cpu_s


def parse_wrk(stdout: str, connections: int) -> dict[str, Any]:
    """The result of one run from wrk's output: the ``BENCH_JSON {...}`` line that ``wrk/post.lua`` prints.
    Raises ValueError when there is no such line or it lacks a count."""
    line = next((x for x in stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise ValueError("no BENCH_JSON line in wrk's output")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    try:
        seconds = raw["duration_us"] / 1e6
        errors = raw["errors"]
        lat = raw["latency_us"]
        return {
            "concurrency": connections,
            "requests": raw["requests"],
            "seconds": round(seconds, 3),
            "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
            "p50_ms": round(lat["p50"] / 1000, 3),
            "p90_ms": round(lat["p90"] / 1000, 3),
            "p99_ms": round(lat["p99"] / 1000, 3),
            "max_ms": round(lat["max"] / 1000, 3),
            "non_2xx": errors["status"],
            "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
            "wrk": raw,
        }
    except (KeyError, TypeError) as error:
        raise ValueError(f"wrk's BENCH_JSON line lacks {error}") from error


def run_wrk(url: str, body: str, connections: int, duration: int, root: int | None = None) -> dict[str, Any]:
    """One wrk run; with ``root`` (the server's first process) also where the machine's CPU time went."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={WRK_TIMEOUT_S}s", "-s", str(LUA), url]
    before = (time.monotonic(), busy_cpu_s(), tree_cpu_s(root) if root else 0.0, children_cpu_s())
    done = subprocess.run(argv, env={**os.environ, "BENCH_BODY": body}, capture_output=True, text=True,
                          timeout=duration + WRK_TIMEOUT_S + 60)
    after = (time.monotonic(), busy_cpu_s(), tree_cpu_s(root) if root else 0.0, children_cpu_s())
    wall = after[0] - before[0]
    server_cpu, wrk_cpu = after[2] - before[2], after[3] - before[3]
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    try:
        result = parse_wrk(done.stdout, connections)
    except ValueError as error:
        raise RuntimeError(f"wrk: {error}: {done.stderr.strip() or done.stdout.strip()}") from error
    result["cpu_cores"] = {  # average cores busy over the run
        "server": round(server_cpu / wall, 2),
        "wrk": round(wrk_cpu / wall, 2),
        "other": round(max(0.0, after[1] - before[1] - server_cpu - wrk_cpu) / wall, 2),
    }
    return result
