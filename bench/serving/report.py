"""The serving benchmark's report: versions of what ran, the machine, and the markdown tables of one run."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from bench.serving import targets
from bench.serving.common import WRK_TIMEOUT_S
from bench.serving.servers import env_bin
from bench.serving.targets import ratio_target, run_of


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
        "mlserver": ["mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop", "scikit-learn"],
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


def ms(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:,.{digits}f} ms"


def ratio(a: float | None, b: float | None) -> str:
    return "–" if not a or not b else f"{a / b:.1f}x"


def rps(run: dict[str, Any] | None) -> float | None:
    return None if run is None else float(run["rps"])


NOISY_CORES = 0.2  # CPU used by other programs during a run, above which its numbers are flagged


def cores(run: dict[str, Any]) -> str:
    c = run.get("cpu_cores")
    if not c:
        return "–"
    return f"{c['server']:.2f} / {c['wrk']:.2f} / {c['other']:.2f}" + (" ⚠" if c["other"] > NOISY_CORES else "")



def mib(summary: dict[str, Any] | None, key: str) -> str:
    return "–" if not summary or summary.get(key) is None else f"{summary[key]:,.0f}"


def _header(data: dict[str, Any]) -> list[str]:
    a = data["settings"]
    m = data["machine"]
    lines = [
        "# Serving benchmark",
        "",
        f"Written by `{a['command']}` on {data['finished']} ({'quick smoke run' if a['quick'] else 'full run'}, "
        f"{data['elapsed_min']:.1f} min). Raw numbers: `{a['json_name']}`.",
        "",
        *(["**A quick smoke run: it checks the harness end to end; its numbers are not to be quoted.**", ""]
          if a["quick"] else []),
        f"- Machine: {m['cores']} cores ({m['cpu']}), Linux {m['kernel']}, Python {m['python']}.",
    ]
    if "load" in a.get("parts", ["load"]):
        lines += [
            f"- Load: {data['versions']['wrk']} with **one thread (`-t1`)** on the same {m['cores']} cores as the "
            "server under test (the load generator takes a share of the CPU from every server alike); keep-alive "
            "connections, each sending the same single-row JSON POST; concurrency "
            f"{', '.join(map(str, a['concurrency']))}; {a['duration']} s each after a {a['warmup']} s warm-up at "
            f"c=16; per-request timeout {WRK_TIMEOUT_S} s.",
            "- req/s is completed requests over the run's duration; p50 and p99 are wrk's latency percentiles "
            "(client-side, including the load generator's own delay). non-2xx counts responses with status >= "
            "400 (wrk's Non-2xx count); socket errors are wrk's connect, read, write and timeout errors.",
            "- cores: average CPU cores busy during the run in the server's processes, in wrk, and in everything "
            f"else on the machine (other programs); ⚠ marks runs where other programs took more than {NOISY_CORES} "
            "of a core, whose numbers are less trustworthy.",
        ]
    if "cold" in a.get("parts", []):
        lines.append(
            f"- Cold start: {a['cold_starts']} starts of each server (a fresh process each), median time from just "
            f"before the process is started until its readiness route answers 200 (polled every "
            f"{a['cold_poll_s'] * 1e3:g} ms), and until its first prediction (sent right after) returns.")
    lines += [
        (f"- Before each server started, the run waited up to {a['quiet_wait_s']:.0f} s for other programs to "
         "use less than 0.2 cores." if a["quiet_wait_s"] else "- The run did not wait for a quiet machine.")
        + f" Load average when the run started: {data['loadavg_start']}; when it ended: {data['loadavg_end']}.",
        "- Every server serves the same fitted model (scikit-learn of berth's .venv in every environment), "
        "trained on the whole iris frame; each is checked with one real prediction before the load.",
        "- berth runs with its defaults: every prediction also goes to the prediction log (monitoring), "
        "metrics on, validation on. `(twin)` serves a bundle saved with `compile=True` (berth's compiled twin), "
        "`(no twin)` one saved with `compile=False` (or by a berth without twins).",
        "- Memory: RSS and PSS (RSS with each shared page split among the processes sharing it) of all the "
        "server's processes, read from /proc; per worker is the total over the server's worker count.",
        "",
        "| server | what | workers | stack |",
        "| --- | --- | ---: | --- |",
    ]
    seen = set()
    for server in [*data["servers"], *data.get("cold_servers", [])]:
        if server["key"] in seen:
            continue
        seen.add(server["key"])
        lines.append(f"| {server['key']} | {server['label']} | {server.get('workers', '?')} | "
                     f"{data['versions'].get(server['env'], '')} |")
    lines += ["", "Models:", ""]
    for model in data["models"]:
        twin = model.get("twin") or model.get("bundle_errors", {}).get("twin") or "–"
        lines.append(f"- {model['title']} (`{model['key']}`): twin bundle: {twin}")
    return lines


def _inprocess(data: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## In-process predict (berth's .venv, timeit, median)",
        "",
        "| model | 1 row, numpy | 1 row, DataFrame | berth.load(...).predict, 1 row (no twin) | (twin) | "
        "per row in a batch of 64 | other programs' cores |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for model in data["models"]:
        t = model["inprocess"]
        lines.append(f"| {model['title']} | {ms(t['predict_1_numpy_ms'])} | {ms(t['predict_1_frame_ms'])}"
                     f" | {ms(t['berth_load_predict_1_ms'])} | {ms(t.get('berth_twin_load_predict_1_ms'))}"
                     f" | {ms(t['predict_64_per_row_ms'], 4)} | {fmt(t.get('other_cpu_cores'))}"
                     f"{' ⚠' if (t.get('other_cpu_cores') or 0) > NOISY_CORES else ''} |")
    return lines


def _load_table(records: list[dict[str, Any]]) -> list[str]:
    mlflow = next((r for r in records if r["server"] == "mlflow"), None)
    lines = [
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
            base = run_of(mlflow, run["concurrency"])
            lines.append(
                f"| {record['server']} | {run['concurrency']} | {fmt(run['rps'], 0)} | "
                f"{ratio(run['rps'], rps(base))} | {fmt(run['p50_ms'])} | {fmt(run['p99_ms'])} | "
                f"{run['non_2xx']} | {run['socket_errors']} | {cores(run)} |")
        if record.get("error"):
            lines.append(f"| {record['server']} | | failed after these runs: {record['error']} | | | | | | |")
    return lines


def _ratio_table(model: str, berths: list[dict[str, Any]], baselines: list[dict[str, Any]],
                 concurrency: list[int]) -> list[str]:
    c_max = max(concurrency)
    lines = ["", f"berth's throughput at c={c_max} over each baseline's (target from the serving issues in "
             "brackets; MLServer: ahead at every concurrency, the lowest ratio shown):", ""]
    header = []
    for b in baselines:
        target = ratio_target(model, b["server"])
        header.append(f"vs {b['server']}" + (f" [{target:g}x]" if target else "")
                      + (" [> 1x, all c]" if b["server"] == "mlserver" else ""))
    lines += ["| berth | " + " | ".join(header) + " | errors (all c) |", "|" + " --- |" * (len(baselines) + 2)]
    for record in berths:
        mine = run_of(record, c_max)
        if mine is None:
            why = record.get("skipped") or record.get("error", "no run")
            lines.append(f"| {record['server']} | " + " | ".join("–" for _ in baselines) + f" | {why} |")
            continue
        cells = []
        for b in baselines:
            if b["server"] == "mlserver":
                pairs = [(run_of(record, c), run_of(b, c)) for c in concurrency]
                values = [x["rps"] / y["rps"] for x, y in pairs if x and y and y["rps"]]
                cells.append(f"{min(values):.1f}x {'✓' if len(values) == len(pairs) and min(values) > 1 else '✗'}"
                             if values else "–")
                continue
            theirs = run_of(b, c_max)
            cell = ratio(mine["rps"], rps(theirs))
            target = ratio_target(model, b["server"])
            if target and theirs and theirs["rps"]:
                cell += " ✓" if mine["rps"] / theirs["rps"] >= target else " ✗"
            cells.append(cell)
        errors = sum(r["non_2xx"] + r["socket_errors"] for r in record["runs"])
        lines.append(f"| {record['server']} | " + " | ".join(cells) + f" | {errors} |")
    return lines


def _latency_table(model: dict[str, Any], berths: list[dict[str, Any]]) -> list[str]:
    t = model["inprocess"]
    lines = ["", "berth's p50 latency at c=1 next to the model's in-process single-row predict (target: within 1 ms"
             + ("; issue 10: <= 1.5 ms" if model["key"] == "forest" else "")
             + "; the p50 includes wrk's side and the loopback round trip, the in-process time does not):", "",
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
    return lines


def _memory_table(records: list[dict[str, Any]]) -> list[str]:
    lines = ["", "Memory (MiB) when ready and after the load:", "",
             "| server | workers | processes | RSS ready | RSS after load | PSS after load | RSS per worker | "
             "PSS per worker | largest process RSS |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for record in records:
        ready, loaded = record.get("memory_ready"), record.get("memory_loaded")
        if not ready and not loaded:
            continue
        last: dict[str, Any] = loaded or ready or {}
        lines.append(f"| {record['server']} | {record.get('workers', '?')} | {last['processes']} | "
                     f"{mib(ready, 'rss_mib')} | {mib(loaded, 'rss_mib')} | {mib(loaded, 'pss_mib')} | "
                     f"{mib(last, 'rss_per_worker_mib')} | {mib(last, 'pss_per_worker_mib')} | "
                     f"{mib(last, 'largest_rss_mib')} |")
    return lines


def _cold_section(data: dict[str, Any]) -> list[str]:
    cold = data.get("cold", [])
    if not cold:
        return []
    lines = ["", "## Cold start", "",
             f"Median of {data['settings']['cold_starts']} starts (min–max in brackets), seconds from process start; "
             "memory (MiB) a second after the first prediction of the first start.", ""]
    titles = {m["key"]: m["title"] for m in data["models"]}
    for key in dict.fromkeys(r["model"] for r in cold):
        lines += [f"### {titles.get(key, key)}", "",
                  "| server | workers | ready | first prediction | RSS | PSS | RSS per worker | PSS per worker |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in (r for r in cold if r["model"] == key):
            if r.get("skipped") or not r.get("ready_s"):
                why = r.get("skipped") or r.get("error", "no start")
                lines.append(f"| {r['server']} | {r['workers']} | {'skipped' if r.get('skipped') else 'failed'}: "
                             f"{why} | | | | | |")
                continue
            spans = [f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})" for s in (r["ready_s"],
                                                                                   r["first_prediction_s"])]
            m = r.get("memory")
            lines.append(f"| {r['server']} | {r['workers']} | {spans[0]} | {spans[1]} | {mib(m, 'rss_mib')} | "
                         f"{mib(m, 'pss_mib')} | {mib(m, 'rss_per_worker_mib')} | {mib(m, 'pss_per_worker_mib')} |")
            if r.get("error"):
                lines.append(f"| {r['server']} | | failed after these starts: {r['error']} | | | | | |")
        lines.append("")
    return lines


def render(data: dict[str, Any]) -> str:
    lines = _header(data)
    lines += _inprocess(data)
    env_of = {s["key"]: s["env"] for s in data["servers"]}
    for model in data["models"]:
        records = [r for r in data["records"] if r["model"] == model["key"]]
        if not records:
            continue
        lines += ["", f"## {model['title']}", ""]
        lines += _load_table(records)
        baselines = [r for r in records if env_of.get(r["server"]) != "berth"]
        berths = [r for r in records if env_of.get(r["server"]) == "berth"]
        if berths:
            lines += _ratio_table(model["key"], berths, baselines, data["settings"]["concurrency"])
            lines += _latency_table(model, berths)
        lines += _memory_table(records)
    lines += _cold_section(data)
    lines += ["", "## Targets", "",
              "Issue 10's targets (one run on this machine; berth with its defaults, 2 workers, unless the target "
              "names workers; `–` with the reason where a side was not measured):", ""]
    lines += targets.table(data)
    notes = [r for r in [*data["records"], *data.get("cold", [])] if r.get("check", {}).get("mismatch")]
    if notes:
        lines += ["", "## Unexpected answers", ""]
        lines += [f"- {r['model']} / {r['server']}: {r['check']['mismatch']}" for r in notes]
    lines += ["", "## Commands", "", "Server logs of the last run are in `bench/.work/serving/logs/`.", ""]
    lines += [f"- {r['model']} / {r['server']}: `{r['command']}`" for r in data["records"] if r.get("command")]
    return "\n".join(lines) + "\n"
