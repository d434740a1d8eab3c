"""Paths, constants and the log line shared by the serving benchmark's modules."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.serving import setup_baselines

ROOT = setup_baselines.ROOT
ENVS = setup_baselines.ENVS
SERVING = Path(__file__).resolve().parent
APPS = SERVING / "apps"
LUA = SERVING / "wrk" / "post.lua"
WORK = ROOT / "bench" / ".work" / "serving"
RESULTS = ROOT / "bench" / "results"
BERTH_BIN = ROOT / ".venv" / "bin"

ROW = [5.1, 3.5, 1.4, 0.2]  # the tutorial's request: one iris flower (class 0, setosa)
HOST = "127.0.0.1"
READY_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
WRK_TIMEOUT_S = 10  # per request: a slow server shows up as latency, not as wrk timeouts


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
