"""The servers under test: how each is started, what it is sent, where its answer is, how it says it is ready.

Baselines run from their own environments under ``bench/.envs`` (see ``setup_baselines.py``); berth from its
``.venv``, once per ``--berth-args`` configuration and per variant (with and without its compiled twin).
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.serving.common import APPS, BERTH_BIN, ENVS, HOST, ROOT, ROW, WORK
from bench.serving.models import MLSERVER_MAX_BATCH_SIZE, MLSERVER_MAX_BATCH_TIME_S, MLSERVER_MODEL, PLAIN, TWIN, Model
from bench.serving.procs import free_port


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
    workers: int = 1  # the processes that serve requests (RSS per worker is the total over this)
    variant: str | None = None  # berth only: TWIN or PLAIN, the bundle it serves
    extra_env: Callable[[Model, int], dict[str, str]] | None = None  # more environment, given model and port


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


def _mlserver_env(model: Model, port: int) -> dict[str, str]:
    """MLServer also opens a gRPC and a metrics port (8081, 8082 by default): free ones, so runs never clash;
    its multiprocess metrics directory goes under bench/.work instead of the working directory."""
    return {
        "MLSERVER_HOST": HOST,
        "MLSERVER_HTTP_PORT": str(port),
        "MLSERVER_GRPC_PORT": str(free_port()),
        "MLSERVER_METRICS_PORT": str(free_port()),
        "MLSERVER_METRICS_DIR": str(WORK / "mlserver-metrics" / str(port)),
    }


def gunicorn_spec(workers: int, key: str | None = None) -> Spec:
    flask = ENVS / "flask" / "bin"
    return Spec(key or f"gunicorn ({workers})", f"Flask app under gunicorn, {workers} sync worker"
                f"{'s' if workers > 1 else ''}", "flask",
                lambda m, p: [str(flask / "gunicorn"), "-w", str(workers), "-b", f"{HOST}:{p}", "flask_app:app"],
                "/predict", lambda m: {"features": ROW}, lambda r: r["prediction"], ready=("POST", None),
                workers=workers)


def baseline_specs() -> list[Spec]:
    flask = ENVS / "flask" / "bin"
    simple = lambda m: {"features": ROW}  # noqa: E731
    return [
        Spec("flask-dev", "Flask dev server (tutorial app, threaded)", "flask",
             lambda m, p: [str(flask / "flask"), "--app", "flask_app", "run", "--host", HOST, "--port", str(p)],
             "/predict", simple, lambda r: r["prediction"], ready=("POST", None)),
        gunicorn_spec(2, key="gunicorn"),
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
        Spec("mlserver", f"MLServer, scikit-learn runtime, adaptive batching (max {MLSERVER_MAX_BATCH_SIZE} rows, "
             f"{MLSERVER_MAX_BATCH_TIME_S * 1e3:g} ms), 1 inference worker", "mlserver",
             lambda m, p: [str(ENVS / "mlserver" / "bin" / "mlserver"), "start", str(m.mlserver_dir)],
             f"/v2/models/{MLSERVER_MODEL}/infer",
             lambda m: {"inputs": [{"name": "predict", "shape": [1, len(ROW)], "datatype": "FP64", "data": ROW}]},
             lambda r: _first(r["outputs"][0]["data"]),
             # /v2/health/ready says 200 before the model has loaded; the model's own route waits for it
             ready=("GET", f"/v2/models/{MLSERVER_MODEL}/ready"), extra_env=_mlserver_env),
    ]


def berth_workers(args: list[str]) -> int:
    """The worker processes of ``berth serve ARGS``: ``--workers N`` (or ``--workers=N``), else berth's default
    of one per core, at most 4."""
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--workers" and i + 1 < len(args) else arg.removeprefix("--workers=")
        if (arg == "--workers" or arg.startswith("--workers=")) and value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, min(os.cpu_count() or 1, 4))


def _berth_argv(variant: str, args: list[str]) -> Callable[[Model, int], list[str]]:
    def argv(model: Model, port: int) -> list[str]:
        return [str(BERTH_BIN / "berth"), "serve", str(model.bundles[variant]), "--host", HOST, "--port", str(port),
                *args]
    return argv


def berth_key(extra: str, variant: str) -> str:
    return "berth" + "".join(f" {a}" for a in shlex.split(extra)) + f" ({variant})"


def berth_specs(configs: list[str], skip: str | None, variants: tuple[str, ...] = (TWIN, PLAIN)) -> list[Spec]:
    specs = []
    for variant in variants:
        for extra in configs:
            args = shlex.split(extra)
            specs.append(Spec(
                berth_key(extra, variant), f"berth serve {extra}".strip() + f", bundle {variant}", "berth",
                _berth_argv(variant, args),
                "/predict", lambda m: {"features": ROW}, lambda r: _first(r["predictions"]),
                ready=("GET", "/health/ready"), cwd=ROOT, skip=skip, workers=berth_workers(args), variant=variant,
            ))
    return specs


def cold_start_specs(berth_skip: str | None) -> list[Spec]:
    """The servers whose cold start is measured: berth with 1 and 2 workers (each variant), the tutorial app
    under gunicorn with 1 and 2 workers, MLflow, BentoML (with batching) and MLServer."""
    baselines = {s.key: s for s in baseline_specs()}
    return [
        *berth_specs(["--workers 1", "--workers 2"], berth_skip),
        gunicorn_spec(1),
        gunicorn_spec(2),
        baselines["mlflow"],
        baselines["bentoml-batch"],
        baselines["mlserver"],
    ]


def skip_reason(spec: Spec, model: Model) -> str | None:
    """Why ``spec`` cannot serve ``model`` (berth not working, or the bundle of its variant missing)."""
    if spec.skip:
        return spec.skip
    if spec.variant is not None and spec.variant not in model.bundles:
        return model.bundle_errors.get(spec.variant, f"no {spec.variant} bundle")
    return None


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
