"""Serving benchmark: berth against the tutorial's Flask app, MLflow, BentoML and MLServer, in one run, on one
machine.

    .venv/bin/python -m bench.serving.run            # full run, writes bench/results/serving.md (see README.md)
    .venv/bin/python -m bench.serving.run --quick    # smoke run, writes under bench/.work/serving/

What it does, in order:

1. sets up the baselines' virtual environments and wrk (``bench/serving/setup_baselines.py``; skip with
   ``--no-setup``);
2. trains the iris classifiers in berth's .venv (LogisticRegression, RandomForestClassifier(100),
   GradientBoostingClassifier(100)) and saves each for every server (``models.py``): a joblib file, an MLflow
   model directory, MLServer's model settings, and two berth bundles (with and without the compiled twin);
   times each model's in-process ``predict`` with timeit;
3. load (``--parts load``): for each model and each server, starts it on a free loopback port in its own
   process group, waits for its readiness route, checks one real prediction, samples its memory, warms it up,
   drives it with wrk (one thread, single-row JSON POSTs) at each concurrency, samples its memory again, and
   stops it (SIGTERM to the group, then SIGKILL), whatever happened;
4. cold start (``--parts cold``, ``coldstart.py``): for each of ``--cold-models``, starts berth (1 and 2
   workers, each variant), the tutorial app under gunicorn (1 and 2 workers), MLflow, BentoML and MLServer
   ``--cold-starts`` times each and takes the median time to ready;
5. writes the tables (``report.py``: berth's throughput ratio to each baseline, the targets of the serving
   issues) and the raw numbers as JSON.

berth is served with ``.venv/bin/berth serve BUNDLE --host 127.0.0.1 --port PORT [ARGS]`` once per
``--berth-args`` (default: no extra arguments, which on this 2-core machine means 2 workers, and
``--workers 1``) and per variant: ``(twin)`` serves the bundle saved with ``compile=True``, ``(no twin)`` the one
saved with ``compile=False`` (or plainly, by a berth without compiled twins, whose twin rows then say "not
available"). When ``berth serve --help`` does not work, berth's rows say so and the baselines are still measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: python bench/serving/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.serving import coldstart, memory, setup_baselines
from bench.serving.common import HOST, READY_TIMEOUT_S, RESULTS, ROW, WORK, WRK_TIMEOUT_S, log
from bench.serving.loadgen import run_wrk
from bench.serving.models import MODEL_KEYS, Model, prepare_models
from bench.serving.procs import Server, free_port, http, on_signal, stop_all, wait_quiet, wait_ready
from bench.serving.report import machine, render, versions
from bench.serving.servers import (
    Spec,
    baseline_specs,
    berth_specs,
    berth_unavailable,
    cold_start_specs,
    server_env,
    skip_reason,
)

PARTS = ("load", "cold")


def bench_server(spec: Spec, model: Model, args: argparse.Namespace) -> dict[str, Any]:
    """Start, check, warm up, load at each concurrency, stop. Never leaves the server running."""
    record: dict[str, Any] = {"model": model.key, "server": spec.key, "label": spec.label, "runs": [],
                              "workers": spec.workers, "variant": spec.variant}
    skip = skip_reason(spec, model)
    if skip:
        record["skipped"] = skip
        log(f"{model.key} / {spec.key}: skipped: {skip}")
        return record
    if args.quiet_wait > 0:
        record["other_cpu_cores_before"] = wait_quiet(args.quiet_wait)
    port = free_port()
    base = f"http://{HOST}:{port}"
    argv = spec.argv(model, port)
    body = json.dumps(spec.body(model)).encode()
    env = server_env(spec.env, model)
    extra = spec.extra_env(model, port) if spec.extra_env is not None else {}
    env.update(extra)
    record["command"] = shlex.join([*(f"{k}={v}" for k, v in extra.items()), *argv]).replace(
        f"{setup_baselines.ROOT}/", "")
    name = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in f"{model.key}-{spec.key}")
    server = Server(argv, env=env, cwd=spec.cwd, log_path=WORK / "logs" / f"{name}.log")
    log(f"{model.key} / {spec.key}: starting on port {port}")
    try:
        server.start()
        assert server.proc is not None
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
        record["memory_ready"] = memory.summarize(memory.sample(server.proc.pid), spec.workers)
        log(f"{model.key} / {spec.key}: ready in {record['ready_s']} s; warming up {args.warmup} s")
        run_wrk(base + spec.path, body.decode(), 16, args.warmup)
        for connections in args.concurrency:
            if not server.alive():
                raise RuntimeError("the server exited during the run")
            result = run_wrk(base + spec.path, body.decode(), connections, args.duration, server.proc.pid)
            record["runs"].append(result)
            log(f"{model.key} / {spec.key}: c={connections}: {result['rps']:.0f} req/s, p50 "
                f"{result['p50_ms']:.2f} ms, p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']}, "
                f"socket errors {result['socket_errors']}; cores busy: {result['cpu_cores']}")
        record["memory_loaded"] = memory.summarize(memory.sample(server.proc.pid), spec.workers)
        log(f"{model.key} / {spec.key}: memory after load: {record['memory_loaded']['rss_mib']} MiB RSS, "
            f"{record['memory_loaded']['pss_mib']} MiB PSS in {record['memory_loaded']['processes']} processes")
    except Exception as error:
        record["error"] = f"{type(error).__name__}: {error}"
        log(f"{model.key} / {spec.key}: {record['error']}")
    finally:
        record["stop_s"] = round(server.stop(), 2)
    return record


def chosen(specs: list[Spec], servers: set[str] | None) -> list[Spec]:
    """The specs named by ``--servers``: by key, by the key's first word (``gunicorn`` also picks
    ``gunicorn (1)``, ``berth`` every berth), or by environment (``flask``, ``berth``, ...)."""
    if not servers:
        return specs
    return [s for s in specs if s.key in servers or s.key.split(" ")[0] in servers or s.env in servers]


def _names(text: str, known: tuple[str, ...], what: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown {what}: {', '.join(sorted(unknown))} (known: {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2 s per concurrency, 1 s warm-up, 2 cold starts of the first cold model, "
                             "no wait for a quiet machine; writes under bench/.work/serving/")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated from load,cold (default both)")
    parser.add_argument("--duration", type=int, help="seconds per concurrency (default 10; --quick: 2)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up at c=16 (default 2; --quick: 1)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated (default 1,16,64)")
    parser.add_argument("--models", default=",".join(MODEL_KEYS),
                        help=f"models of the load part, comma-separated from {','.join(MODEL_KEYS)} (default all)")
    parser.add_argument("--cold-models", help="models of the cold-start part (default logreg,forest; --quick: "
                                              "logreg)")
    parser.add_argument("--cold-starts", type=int, help="starts per server and model (default 5; --quick: 2)")
    parser.add_argument("--servers", help="comma-separated server keys, first words of keys or environments "
                                          "(default: all), e.g. mlflow,berth")
    parser.add_argument("--berth-args", action="append", metavar="ARGS",
                        help="extra arguments of one berth configuration, e.g. --berth-args '--workers 2'; "
                             "repeat for several (default: '' and '--workers 1'; berth's default is one "
                             "worker per core, at most 4, so 2 here)")
    parser.add_argument("--no-setup", action="store_true", help="do not check or build the baselines' envs")
    parser.add_argument("--quiet-wait", type=float,
                        help="before each server, wait up to this many seconds for other programs to leave "
                             "the CPU idle (default 120; --quick: 0)")
    parser.add_argument("--no-quiet-wait", action="store_true", help="the same as --quiet-wait 0")
    parser.add_argument("--output", type=Path, help="results markdown (default bench/results/serving.md, "
                                                    "or bench/.work/serving/serving-quick.md with --quick)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: write the markdown of an earlier run's JSON to --output (default: the "
                             "JSON's name with .md)")
    args = parser.parse_args(argv)
    args.parts = _names(args.parts, PARTS, "part(s)", parser)
    args.duration = args.duration or (2 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 2)
    args.cold_starts = args.cold_starts or (2 if args.quick else 5)
    if args.cold_starts < 1 or args.duration < 1 or args.warmup < 1:
        parser.error("--cold-starts, --duration and --warmup must be at least 1")
    if args.no_quiet_wait:
        args.quiet_wait = 0.0
    elif args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 120.0
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.models = _names(args.models, MODEL_KEYS, "model(s)", parser)
    args.cold_models = _names(args.cold_models or ("logreg" if args.quick else "logreg,forest"), MODEL_KEYS,
                              "cold model(s)", parser)
    args.servers = {s.strip() for s in args.servers.split(",") if s.strip()} if args.servers else None
    args.berth_args = args.berth_args if args.berth_args is not None else ["", "--workers 1"]
    if args.render is not None:
        args.output = args.output or args.render.with_suffix(".md")
    args.output = args.output or (WORK / "serving-quick.md" if args.quick else RESULTS / "serving.md")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render is not None:
        data = json.loads(args.render.read_text())
        data["settings"]["json_name"] = args.render.name
        args.output.write_text(render(data))
        log(f"wrote {args.output} from {args.render}")
        return 0
    started = time.monotonic()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    WORK.mkdir(parents=True, exist_ok=True)
    loadavg_start = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if not args.no_setup:
        setup_baselines.setup()
    skip = berth_unavailable()
    if skip:
        log(f"berth is skipped: {skip}. Its rows stay in the results, marked skipped.")
    specs = chosen(baseline_specs() + berth_specs(args.berth_args, skip), args.servers) if "load" in args.parts else []
    cold_specs = chosen(cold_start_specs(skip), args.servers) if "cold" in args.parts else []
    keys = list(dict.fromkeys([*(args.models if specs else []), *(args.cold_models if cold_specs else [])]))
    models = prepare_models(keys, repeat=3 if args.quick else 7, mlflow_env=server_env("mlflow"),
                            quiet_wait=args.quiet_wait)
    records, cold = [], []
    try:
        for model in models:
            if model.key in args.models:
                for spec in specs:
                    records.append(bench_server(spec, model, args))
        for model in models:  # after the load part: every server has run once, its files are in the page cache
            if model.key in args.cold_models:
                for spec in cold_specs:
                    cold.append(coldstart.measure(spec, model, args.cold_starts, args.quiet_wait))
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
            "quick": args.quick, "parts": args.parts, "duration": args.duration, "warmup": args.warmup,
            "concurrency": args.concurrency, "wrk_threads": 1, "wrk_timeout_s": WRK_TIMEOUT_S,
            "cold_starts": args.cold_starts, "cold_poll_s": coldstart.POLL_S,
            "berth_args": args.berth_args, "berth_skipped": skip, "json_name": args.output.with_suffix(".json").name,
            "row": ROW,
        },
        "machine": machine(),
        "versions": versions(),
        "servers": [{"key": s.key, "label": s.label, "env": s.env, "workers": s.workers, "variant": s.variant}
                    for s in specs],
        "cold_servers": [{"key": s.key, "label": s.label, "env": s.env, "workers": s.workers, "variant": s.variant}
                         for s in cold_specs],
        "models": [{"key": m.key, "title": m.title, "expected": m.expected, "bundle_errors": m.bundle_errors,
                    "twin": m.twin, "inprocess": m.inprocess} for m in models],
        "records": records,
        "cold": cold,
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
