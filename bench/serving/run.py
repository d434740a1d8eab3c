"""Serving benchmark: berth against the tutorial's Flask app, MLflow and BentoML, in one run, on one machine.

    .venv/bin/python -m bench.serving.run            # full run (about 15 minutes), writes bench/results/serving.md
    .venv/bin/python -m bench.serving.run --quick    # smoke run (about 5 minutes), writes under bench/.work/

What it does, in order:

1. sets up the baselines' virtual environments and wrk (``bench/serving/setup_baselines.py``; skip with
   ``--no-setup``);
2. trains two iris classifiers in berth's .venv (LogisticRegression, RandomForestClassifier(100)) and saves
   each three ways: a joblib file (Flask, BentoML), an MLflow model directory (made inside the MLflow env) and
   a berth bundle; times each model's in-process ``predict`` with timeit;
3. for each model and each server: starts it on a free loopback port in its own process group, waits for its
   readiness route, checks one real prediction, warms it up, drives it with wrk (one thread, single-row JSON
   POSTs) at each concurrency, and stops it (SIGTERM to the group, then SIGKILL), whatever happened;
4. writes the tables (with berth's throughput ratio to each baseline) and the raw numbers as JSON.

berth is served with ``.venv/bin/berth serve BUNDLE --host 127.0.0.1 --port PORT [ARGS]`` once per
``--berth-args`` (default: no extra arguments, which on this 2-core machine means 2 workers, and
``--workers 1``, a single process whose speed comes from batching alone); when ``berth serve --help`` does not
work, its rows say so and the baselines are still measured.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import timeit
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python bench/serving/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

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
TARGETS = {"gunicorn": 5.0, "mlflow": 10.0, "bentoml-batch": 2.0}  # from the serving issue, at c=64


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- processes

_LIVE: list[Server] = []


class Server:
    """One server under test: a command started in its own session (process group), logged to a file."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.argv, self.env, self.cwd, self.log_path = argv, env, cwd, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as out:
            out.write(f"$ {shlex.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        _LIVE.append(self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> float:
        """SIGTERM to the server's process group, SIGKILL to whatever of its process tree is left after
        STOP_TIMEOUT_S (the tree, not only the group: some servers start workers in sessions of their own).
        Returns the seconds it took."""
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        leader = self.proc.pid
        seen = tree(leader) | {leader}
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(leader, signal.SIGTERM)
        deadline = started + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            self.proc.poll()
            table = processes()
            seen |= tree(leader, table)
            if not any(pid in table and table[pid][1] != "Z" for pid in seen):
                break
            time.sleep(0.1)
        else:
            log(f"still running {STOP_TIMEOUT_S:.0f} s after SIGTERM, killing: {shlex.join(self.argv[:3])} ...")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(leader, signal.SIGKILL)
            for pid in seen | tree(leader):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        if self in _LIVE:
            _LIVE.remove(self)
        return time.monotonic() - started


def stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _on_signal(signum: int, _frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through every finally: servers get stopped


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def http(method: str, url: str, body: bytes | None = None, timeout: float = 10.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(server: Server, url: str, method: str, body: bytes | None, timeout: float) -> float:
    started = time.monotonic()
    last = "no answer"
    while time.monotonic() - started < timeout:
        if not server.alive():
            raise RuntimeError(f"exited with code {server.proc.returncode if server.proc else '?'} before ready; "
                               f"see {server.log_path.relative_to(ROOT)}")
        try:
            status, _ = http(method, url, body, timeout=5)
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except (OSError, urllib.error.URLError) as error:
            last = str(error)
        time.sleep(0.25)
    raise RuntimeError(f"not ready after {timeout:.0f} s ({last}); see {server.log_path.relative_to(ROOT)}")


# --------------------------------------------------------------------------------------------- load

_TICK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICK


def processes() -> dict[int, tuple[int, str, float]]:
    """Every process on the machine: pid -> (parent pid, state, CPU seconds incl. reaped children)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        table[int(entry.name)] = (int(rest[1]), rest[0], sum(int(x) for x in rest[11:15]) / _TICK)
    return table


def tree(root: int, table: dict[int, tuple[int, str, float]] | None = None) -> set[int]:
    """``root`` and all its live descendants (BentoML's workers, for one, start sessions of their own)."""
    table = processes() if table is None else table
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][1] != "Z" and pid not in found:
            found.add(pid)
            todo += [child for child, (parent, _, _) in table.items() if parent == pid]
    return found


def tree_cpu_s(root: int) -> float:
    table = processes()
    return sum(table[pid][2] for pid in tree(root, table))


def self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_wrk(url: str, body: str, connections: int, duration: int, root: int | None = None) -> dict[str, Any]:
    """One wrk run; with ``root`` (the server's first process) also where the machine's CPU time went."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={WRK_TIMEOUT_S}s", "-s", str(LUA), url]
    before = (time.monotonic(), busy_cpu_s(), tree_cpu_s(root) if root else 0.0, children_cpu_s())
    done = subprocess.run(argv, env={**os.environ, "BENCH_BODY": body}, capture_output=True, text=True,
                          timeout=duration + WRK_TIMEOUT_S + 60)
    after = (time.monotonic(), busy_cpu_s(), tree_cpu_s(root) if root else 0.0, children_cpu_s())
    wall = after[0] - before[0]
    server_cpu, wrk_cpu = after[2] - before[2], after[3] - before[3]
    cpu = {  # average cores busy over the run
        "server": round(server_cpu / wall, 2),
        "wrk": round(wrk_cpu / wall, 2),
        "other": round(max(0.0, after[1] - before[1] - server_cpu - wrk_cpu) / wall, 2),
    }
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
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
        "cpu_cores": cpu,
        "wrk": raw,
    }


# --------------------------------------------------------------------------------------------- models

@dataclass
class Model:
    key: str
    title: str
    joblib_path: Path
    mlflow_dir: Path
    bundle_dir: Path
    features: list[str]
    expected: Any = None
    bundle_error: str | None = None
    inprocess: dict[str, float | None] = field(default_factory=dict)


def time_call(fn: Callable[[Any], Any], arg: Any, repeat: int) -> float:
    """Median seconds of ``fn(arg)`` over ``repeat`` timeit runs of about 0.2 s each."""
    fn(arg)
    timer = timeit.Timer(lambda: fn(arg))
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(repeat=repeat, number=number)) / number


def prepare_models(keys: list[str], repeat: int, quiet_wait: float = 0.0) -> list[Model]:
    """Train, save three ways, and time in process (in this interpreter: berth's .venv)."""
    import joblib
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    import berth

    X, y = load_iris(return_X_y=True, as_frame=True)
    makers: dict[str, tuple[str, Callable[[], Any]]] = {
        "logreg": ("LogisticRegression", lambda: LogisticRegression(max_iter=1000)),
        "forest": ("RandomForestClassifier(n_estimators=100)",
                   lambda: RandomForestClassifier(n_estimators=100, random_state=0)),
    }
    models = []
    for key in keys:
        title, make = makers[key]
        base = WORK / "models" / key
        base.mkdir(parents=True, exist_ok=True)
        estimator = make().fit(X, y)
        model = Model(key, title, base / "model.joblib", base / "mlflow", base / "bundle", list(X.columns))
        joblib.dump(estimator, model.joblib_path)
        try:
            berth.save(estimator, model.bundle_dir, sample=X.head(20), reference=X, name=f"iris-{key}",
                       overwrite=True)
        except Exception as error:  # berth is under construction: the baselines still run
            model.bundle_error = f"{type(error).__name__}: {error}"
            log(f"berth.save failed for {key}: {model.bundle_error}")
        row_np = np.array([ROW])
        row_df = pd.DataFrame([ROW], columns=X.columns)
        batch = X.sample(64, random_state=0)
        model.expected = estimator.predict(row_df).tolist()[0]
        if quiet_wait > 0:
            wait_quiet(quiet_wait)
        before = (time.monotonic(), busy_cpu_s(), self_cpu_s())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "X does not have valid feature names" for the numpy row
            model.inprocess = {
                "predict_1_numpy_ms": time_call(estimator.predict, row_np, repeat) * 1e3,
                "predict_1_frame_ms": time_call(estimator.predict, row_df, repeat) * 1e3,
                "predict_64_per_row_ms": time_call(estimator.predict, batch, repeat) * 1e3 / 64,
                "berth_load_predict_1_ms": None,
            }
        if model.bundle_error is None:
            try:
                loaded = berth.load(model.bundle_dir)
                model.inprocess["berth_load_predict_1_ms"] = time_call(loaded.predict, row_df, repeat) * 1e3
            except Exception as error:
                log(f"timing berth.load(...).predict failed for {key}: {type(error).__name__}: {error}")
        after = (time.monotonic(), busy_cpu_s(), self_cpu_s())
        model.inprocess["other_cpu_cores"] = round(
            max(0.0, after[1] - before[1] - (after[2] - before[2])) / (after[0] - before[0]), 2)
        log(f"{key}: in-process predict " + ", ".join(
            f"{k}={v:.3f}" for k, v in model.inprocess.items() if v is not None))
        models.append(model)
    # One MLflow process saves both models (its import alone takes several seconds).
    argv = [str(setup_baselines.env_python("mlflow")), str(APPS / "mlflow_save.py")]
    for model in models:
        argv += [str(model.joblib_path), str(model.mlflow_dir)]
    subprocess.run(argv, check=True, env=server_env("mlflow"), timeout=600, stdout=subprocess.DEVNULL)
    return models


# --------------------------------------------------------------------------------------------- servers

@dataclass
class Spec:
    key: str
    label: str
    env: str  # name under bench/.envs, or "berth" for berth's .venv
    argv: Callable[[Model, int], list[str]]
    path: str
    body: Callable[[Model], dict[str, Any]]
    answer: Callable[[Any], Any]  # the prediction in a decoded response
    ready: tuple[str, str | None] = ("GET", None)  # method and path of the readiness probe (None: predict)
    cwd: Path = APPS
    skip: str | None = None


def env_bin(env: str) -> Path:
    return BERTH_BIN if env == "berth" else ENVS / env / "bin"


def server_env(env: str, model: Model | None = None) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}}
    out.update({
        "PATH": f"{env_bin(env)}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow execs `uvicorn` by name
        "VIRTUAL_ENV": str(env_bin(env).parent),
        "PYTHONUNBUFFERED": "1",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "BENTOML_HOME": str(WORK / "bentoml-home"),
        "BERTH_MONITOR_DIR": str(WORK / "berth-monitoring"),  # berth logs predictions (on by default) here
    })
    if model is not None:
        out["MODEL_PATH"] = str(model.joblib_path)
    return out


def _first(value: Any) -> Any:
    while isinstance(value, list) and value:
        value = value[0]
    return value


def baseline_specs() -> list[Spec]:
    flask = ENVS / "flask" / "bin"
    simple = lambda m: {"features": ROW}  # noqa: E731
    return [
        Spec("flask-dev", "Flask dev server (tutorial app, threaded)", "flask",
             lambda m, p: [str(flask / "flask"), "--app", "flask_app", "run", "--host", HOST, "--port", str(p)],
             "/predict", simple, lambda r: r["prediction"], ready=("POST", None)),
        Spec("gunicorn", "Flask app under gunicorn, 2 sync workers", "flask",
             lambda m, p: [str(flask / "gunicorn"), "-w", "2", "-b", f"{HOST}:{p}", "flask_app:app"],
             "/predict", simple, lambda r: r["prediction"], ready=("POST", None)),
        Spec("mlflow", "mlflow models serve --env-manager local (1 uvicorn worker)", "mlflow",
             lambda m, p: [str(ENVS / "mlflow" / "bin" / "mlflow"), "models", "serve", "-m", str(m.mlflow_dir),
                           "--env-manager", "local", "-h", HOST, "-p", str(p)],
             "/invocations", lambda m: {"dataframe_split": {"columns": m.features, "data": [ROW]}},
             lambda r: _first(r["predictions"]), ready=("GET", "/ping")),
        Spec("bentoml-plain", "BentoML service, no batching (1 worker)", "bentoml",
             lambda m, p: [str(ENVS / "bentoml" / "bin" / "bentoml"), "serve", "bento_service:IrisPlain",
                           "--working-dir", str(APPS), "--host", HOST, "-p", str(p)],
             "/predict", simple, lambda r: r["prediction"], ready=("GET", "/readyz")),
        Spec("bentoml-batch", "BentoML service, adaptive batching (max 64 rows, 1 worker)", "bentoml",
             lambda m, p: [str(ENVS / "bentoml" / "bin" / "bentoml"), "serve", "bento_service:IrisBatched",
                           "--working-dir", str(APPS), "--host", HOST, "-p", str(p)],
             "/predict", lambda m: {"features": [ROW]}, _first, ready=("GET", "/readyz")),
    ]


def berth_key(extra: str) -> str:
    return "berth" + "".join(f" {a}" for a in shlex.split(extra))


def berth_specs(configs: list[str], skip: str | None) -> list[Spec]:
    specs = []
    for extra in configs:
        args = shlex.split(extra)
        specs.append(Spec(
            berth_key(extra), f"berth serve {extra}".strip(), "berth",
            lambda m, p, args=args: [str(BERTH_BIN / "berth"), "serve", str(m.bundle_dir), "--host", HOST,
                                     "--port", str(p), *args],
            "/predict", lambda m: {"features": ROW}, lambda r: _first(r["predictions"]),
            ready=("GET", "/health/ready"), cwd=ROOT, skip=skip,
        ))
    return specs


def berth_unavailable() -> str | None:
    """Why ``berth serve`` cannot be benchmarked yet, or None when ``berth serve --help`` works."""
    berth = BERTH_BIN / "berth"
    if not berth.exists():
        return f"{berth.relative_to(ROOT)} does not exist"
    try:
        done = subprocess.run([str(berth), "serve", "--help"], capture_output=True, text=True, timeout=60,
                              env=server_env("berth"), cwd=ROOT)
    except subprocess.TimeoutExpired:
        return "`berth serve --help` did not finish in 60 s"
    if done.returncode != 0:
        # typer/rich frame the message in a box: keep the last line with words in it
        words = [line.strip(" │╭╮╰╯─") for line in (done.stderr + done.stdout).splitlines()]
        words = [w for w in words if any(ch.isalpha() for ch in w) and not w.startswith("Error")]
        return f"`berth serve --help` failed (exit {done.returncode}: {words[-1] if words else 'no output'})"
    return None


def wait_quiet(limit_s: float, threshold: float = 0.2) -> float:
    """Wait (up to ``limit_s``) until other programs use less than ``threshold`` cores over 2 s; returns the
    cores they used in the last sample. Other sessions' test suites on this 2-core machine skew every number."""
    deadline = time.monotonic() + limit_s
    while True:
        before = (time.monotonic(), busy_cpu_s(), self_cpu_s() + children_cpu_s())
        time.sleep(2)
        after = (time.monotonic(), busy_cpu_s(), self_cpu_s() + children_cpu_s())
        other = max(0.0, after[1] - before[1] - (after[2] - before[2])) / (after[0] - before[0])
        if other < threshold or time.monotonic() >= deadline:
            return round(other, 2)
        log(f"other programs use {other:.2f} cores; waiting for a quieter machine "
            f"(up to {deadline - time.monotonic():.0f} s more)")
        time.sleep(3)


def bench_server(spec: Spec, model: Model, args: argparse.Namespace) -> dict[str, Any]:
    """Start, check, warm up, load at each concurrency, stop. Never leaves the server running."""
    record: dict[str, Any] = {"model": model.key, "server": spec.key, "label": spec.label, "runs": []}
    skip = spec.skip or (model.bundle_error and spec.env == "berth" and f"berth.save failed: {model.bundle_error}")
    if skip:
        record["skipped"] = skip
        log(f"{model.key} / {spec.key}: skipped: {skip}")
        return record
    if args.quiet_wait > 0:
        record["other_cpu_cores_before"] = wait_quiet(args.quiet_wait)
    port = free_port()
    base = f"http://{HOST}:{port}"
    argv = spec.argv(model, port)
    record["command"] = shlex.join(argv).replace(f"{ROOT}/", "")
    body = json.dumps(spec.body(model)).encode()
    server = Server(argv, env=server_env(spec.env, model), cwd=spec.cwd,
                    log_path=WORK / "logs" / f"{model.key}-{spec.key.replace(' ', '_')}.log")
    log(f"{model.key} / {spec.key}: starting on port {port}")
    try:
        server.start()
        method, ready_path = spec.ready
        ready_body = body if ready_path is None else None
        record["ready_s"] = round(wait_ready(server, base + (ready_path or spec.path), method, ready_body,
                                             READY_TIMEOUT_S), 2)
        status, answer = http("POST", base + spec.path, body)
        record["check"] = {"status": status, "body": answer.decode(errors="replace")[:300]}
        if status != 200:
            raise RuntimeError(f"the check request got HTTP {status}: {answer[:300]!r}")
        got = spec.answer(json.loads(answer))
        if got != model.expected:
            record["check"]["mismatch"] = f"expected {model.expected!r}, got {got!r}"
            log(f"{model.key} / {spec.key}: unexpected prediction {got!r} (in process: {model.expected!r})")
        log(f"{model.key} / {spec.key}: ready in {record['ready_s']} s; warming up {args.warmup} s")
        run_wrk(base + spec.path, body.decode(), 16, args.warmup)
        for connections in args.concurrency:
            if not server.alive():
                raise RuntimeError("the server exited during the run")
            assert server.proc is not None
            result = run_wrk(base + spec.path, body.decode(), connections, args.duration, server.proc.pid)
            record["runs"].append(result)
            log(f"{model.key} / {spec.key}: c={connections}: {result['rps']:.0f} req/s, p50 "
                f"{result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']}, "
                f"socket errors {result['socket_errors']}; cores busy: {result['cpu_cores']}")
    except Exception as error:
        record["error"] = f"{type(error).__name__}: {error}"
        log(f"{model.key} / {spec.key}: {record['error']}")
    finally:
        record["stop_s"] = round(server.stop(), 2)
    return record


# --------------------------------------------------------------------------------------------- report

def versions() -> dict[str, str]:
    code = ("import importlib.metadata as m, json, sys\n"
            "def v(n):\n"
            "    try:\n        return m.version(n)\n"
            "    except m.PackageNotFoundError:\n        return '?'\n"
            "print(json.dumps({n: v(n) for n in sys.argv[1:]}))")
    wanted = {
        "berth": ["berth", "scikit-learn", "numpy"],
        "flask": ["flask", "gunicorn", "werkzeug", "scikit-learn"],
        "mlflow": ["mlflow", "uvicorn", "fastapi", "scikit-learn"],
        "bentoml": ["bentoml", "uvicorn", "starlette", "scikit-learn"],
    }
    out = {}
    for env, names in wanted.items():
        python = env_bin(env) / "python"
        try:
            got = json.loads(subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True,
                                            timeout=60, check=True).stdout)
            out[env] = ", ".join(f"{k} {v}" for k, v in got.items())
        except (subprocess.SubprocessError, OSError, ValueError):
            out[env] = "?"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, timeout=30)
    out["wrk"] = (wrk.stdout or wrk.stderr).split("Copyright")[0].strip()
    return out


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "python": platform.python_version()}


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def run_of(record: dict[str, Any], connections: int) -> dict[str, Any] | None:
    return next((r for r in record.get("runs", []) if r["concurrency"] == connections), None)


def ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.1f}x"


NOISY_CORES = 0.2  # CPU used by other programs during a run, above which its numbers are flagged


def cores(run: dict[str, Any]) -> str:
    c = run.get("cpu_cores")
    if not c:
        return "–"
    return f"{c['server']:.2f} / {c['wrk']:.2f} / {c['other']:.2f}" + (" ⚠" if c["other"] > NOISY_CORES else "")


def render(data: dict[str, Any]) -> str:
    a = data["settings"]
    c_max = max(a["concurrency"])
    lines = [
        "# Serving benchmark",
        "",
        f"Written by `{a['command']}` on {data['finished']} ({'quick smoke run' if a['quick'] else 'full run'}, "
        f"{data['elapsed_min']:.1f} min). Raw numbers: `{a['json_name']}`.",
        "",
        f"- Machine: {data['machine']['cores']} cores ({data['machine']['cpu']}), Linux "
        f"{data['machine']['kernel']}, Python {data['machine']['python']}.",
        f"- Load: {data['versions']['wrk']} with **one thread (`-t1`)** on the same {data['machine']['cores']} "
        "cores as the server under test (the load generator takes a share of the CPU from every server alike); "
        f"keep-alive connections, each sending the same single-row JSON POST; concurrency "
        f"{', '.join(map(str, a['concurrency']))}; {a['duration']} s each after a {a['warmup']} s warm-up at "
        f"c=16; per-request timeout {WRK_TIMEOUT_S} s.",
        "- req/s is completed requests over the run's duration; p50 and p99 are wrk's latency percentiles "
        "(client-side, including the load generator's own delay). non-2xx counts responses with status >= 400 "
        "(wrk's Non-2xx count); socket errors are wrk's connect, read, write and timeout errors.",
        "- cores: average CPU cores busy during the run in the server's processes, in wrk, and in everything "
        f"else on the machine (other programs); ⚠ marks runs where other programs took more than {NOISY_CORES} "
        "of a core, whose numbers are less trustworthy.",
        (f"- Before each server started, the run waited up to {a['quiet_wait_s']:.0f} s for other programs to "
         "use less than 0.2 cores." if a["quiet_wait_s"] else "- The run did not wait for a quiet machine.")
        + f" Load average when the run started: {data['loadavg_start']}; when it ended: {data['loadavg_end']}.",
        "- Every server serves the same fitted model (scikit-learn of berth's .venv in every environment), "
        "trained on the whole iris frame; each is checked with one real prediction before the load.",
        "- berth runs with its defaults: every prediction also goes to the prediction log (monitoring), "
        "metrics on, validation on.",
        "",
        "| server | what | stack |",
        "| --- | --- | --- |",
    ]
    env_of = {s["key"]: s["env"] for s in data["servers"]}
    for server in data["servers"]:
        lines.append(f"| {server['key']} | {server['label']} | {data['versions'].get(server['env'], '')} |")
    lines += [
        "",
        "## In-process predict (berth's .venv, timeit, median)",
        "",
        "| model | 1 row, numpy | 1 row, DataFrame | berth.load(...).predict, 1 row | per row in a batch of 64 | "
        "other programs' cores |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for model in data["models"]:
        t = model["inprocess"]
        lines.append(f"| {model['title']} | {fmt(t['predict_1_numpy_ms'], 3)} ms | {fmt(t['predict_1_frame_ms'], 3)} ms"
                     f" | {fmt(t['berth_load_predict_1_ms'], 3)} ms | {fmt(t['predict_64_per_row_ms'], 4)} ms"
                     f" | {fmt(t.get('other_cpu_cores'))}"
                     f"{' ⚠' if (t.get('other_cpu_cores') or 0) > NOISY_CORES else ''} |")
    for model in data["models"]:
        records = [r for r in data["records"] if r["model"] == model["key"]]
        mlflow = next((r for r in records if r["server"] == "mlflow"), None)
        lines += [
            "",
            f"## {model['title']}",
            "",
            "| server | c | req/s | ÷ MLflow's | p50 ms | p99 ms | non-2xx | socket errors | cores: server / wrk / "
            "other |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for record in records:
            if record.get("skipped") or not record.get("runs"):
                why = record.get("skipped") or record.get("error", "no run")
                lines.append(f"| {record['server']} | – | {'skipped' if record.get('skipped') else 'failed'}: "
                             f"{why} | | | | | | |")
                continue
            for run in record["runs"]:
                base = run_of(mlflow, run["concurrency"]) if mlflow else None
                lines.append(
                    f"| {record['server']} | {run['concurrency']} | {fmt(run['rps'], 0)} | "
                    f"{ratio(run['rps'], base and base['rps'])} | {fmt(run['p50_ms'])} | {fmt(run['p99_ms'])} | "
                    f"{run['non_2xx']} | {run['socket_errors']} | {cores(run)} |")
            if record.get("error"):
                lines.append(f"| {record['server']} | | failed after these runs: {record['error']} | | | | | | |")
        baselines = [r for r in records if env_of.get(r["server"]) != "berth"]
        berths = [r for r in records if env_of.get(r["server"]) == "berth"]
        if not berths:
            continue
        lines += ["", f"berth's throughput at c={c_max} over each baseline's (target from the serving issue "
                  "in brackets):", ""]
        header = "| berth | " + " | ".join(
            f"vs {b['server']}" + (f" [{TARGETS[b['server']]:g}x]" if b["server"] in TARGETS else "")
            for b in baselines) + " | errors (all c) |"
        lines += [header, "|" + " --- |" * (len(baselines) + 2)]
        for record in berths:
            mine = run_of(record, c_max)
            if mine is None:
                why = record.get("skipped") or record.get("error", "no run")
                lines.append(f"| {record['server']} | " + " | ".join("–" for _ in baselines) + f" | {why} |")
                continue
            cells = []
            for b in baselines:
                theirs = run_of(b, c_max)
                cell = ratio(mine["rps"], theirs and theirs["rps"])
                if b["server"] in TARGETS and theirs and theirs["rps"]:
                    cell += " ✓" if mine["rps"] / theirs["rps"] >= TARGETS[b["server"]] else " ✗"
                cells.append(cell)
            errors = sum(r["non_2xx"] + r["socket_errors"] for r in record["runs"])
            lines.append(f"| {record['server']} | " + " | ".join(cells) + f" | {errors} |")
        t = model["inprocess"]
        lines += ["", "berth's p50 latency at c=1 next to the model's in-process single-row predict (target: "
                  "within 1 ms; the p50 includes wrk's side and the loopback round trip, the in-process time does "
                  "not):", "",
                  "| berth | p50 at c=1 | predict(1 row, DataFrame) | predict(1 row, numpy) | difference (DataFrame) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for record in berths:
            one = run_of(record, 1)
            if one is None:
                lines.append(f"| {record['server']} | – | {fmt(t['predict_1_frame_ms'], 3)} ms | "
                             f"{fmt(t['predict_1_numpy_ms'], 3)} ms | – |")
                continue
            diff = one["p50_ms"] - t["predict_1_frame_ms"]
            lines.append(f"| {record['server']} | {fmt(one['p50_ms'], 3)} ms | {fmt(t['predict_1_frame_ms'], 3)} ms | "
                         f"{fmt(t['predict_1_numpy_ms'], 3)} ms | {diff:+.3f} ms {'✓' if diff <= 1 else '✗'} |")
    notes = [r for r in data["records"] if r.get("check", {}).get("mismatch")]
    if notes:
        lines += ["", "## Unexpected answers", ""]
        lines += [f"- {r['model']} / {r['server']}: {r['check']['mismatch']}" for r in notes]
    lines += ["", "## Commands", "", "Server logs of the last run are in `bench/.work/serving/logs/`.", ""]
    lines += [f"- {r['model']} / {r['server']}: `{r['command']}`" for r in data["records"] if r.get("command")]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 s per concurrency, 1 s warm-up; writes under bench/.work/serving/")
    parser.add_argument("--duration", type=int, help="seconds per concurrency (default 10; --quick: 2)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up at c=16 (default 2; --quick: 1)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    parser.add_argument("--models", default="logreg,forest", help="comma-separated from logreg,forest")
    parser.add_argument("--servers", help="comma-separated server keys (default: all), e.g. mlflow,berth")
    parser.add_argument("--berth-args", action="append", metavar="ARGS",
                        help="extra arguments of one berth configuration, e.g. --berth-args '--workers 2'; "
                             "repeat for several (default: '' and '--workers 1'; berth's default is one "
                             "worker per core, at most 4, so 2 here)")
    parser.add_argument("--no-setup", action="store_true", help="do not check or build the baselines' envs")
    parser.add_argument("--quiet-wait", type=float,
                        help="before each server, wait up to this many seconds for other programs to leave "
                             "the CPU idle (default 120; --quick: 0)")
    parser.add_argument("--output", type=Path, help="results markdown (default bench/results/serving.md, "
                                                    "or bench/.work/serving/serving-quick.md with --quick)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (2 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 2)
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 120.0
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(args.models) - {"logreg", "forest"}
    if unknown:
        parser.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    args.berth_args = args.berth_args if args.berth_args is not None else ["", "--workers 1"]
    args.output = args.output or (WORK / "serving-quick.md" if args.quick else RESULTS / "serving.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    WORK.mkdir(parents=True, exist_ok=True)
    loadavg_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if not args.no_setup:
        setup_baselines.setup()
    skip = berth_unavailable()
    if skip:
        log(f"berth is skipped: {skip}. Its rows stay in the results, marked skipped.")
    specs = baseline_specs() + berth_specs(args.berth_args, skip)
    if args.servers:
        chosen = {s.strip() for s in args.servers.split(",")}
        specs = [s for s in specs if s.key in chosen or (s.env == "berth" and "berth" in chosen)]
    models = prepare_models(args.models, repeat=3 if args.quick else 7, quiet_wait=args.quiet_wait)
    records = []
    try:
        for model in models:
            for spec in specs:
                records.append(bench_server(spec, model, args))
    finally:
        stop_all()
    data = {
        "loadavg_start": loadavg_start,
        "loadavg_end": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "elapsed_min": round((time.monotonic() - started) / 60, 2),
        "settings": {
            "quiet_wait_s": args.quiet_wait,
            "command": f"python -m bench.serving.run {shlex.join(sys.argv[1:] if argv is None else argv)}".rstrip(),
            "quick": args.quick, "duration": args.duration, "warmup": args.warmup,
            "concurrency": args.concurrency, "wrk_threads": 1, "wrk_timeout_s": WRK_TIMEOUT_S,
            "berth_args": args.berth_args, "berth_skipped": skip, "json_name": args.output.with_suffix(".json").name,
            "row": ROW,
        },
        "machine": machine(),
        "versions": versions(),
        "servers": [{"key": s.key, "label": s.label, "env": s.env} for s in specs],
        "models": [{"key": m.key, "title": m.title, "expected": m.expected, "bundle_error": m.bundle_error,
                    "inprocess": m.inprocess} for m in models],
        "records": records,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    args.output.write_text(render(data))
    log(f"wrote {args.output} and {args.output.with_suffix('.json').name} in {data['elapsed_min']:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
