"""The models every server serves: iris classifiers trained in berth's .venv, saved for each server, and timed
in process.

Each model is saved as a joblib file (the tutorial's Flask app, BentoML, MLServer's scikit-learn runtime), an
MLflow model directory (made inside the MLflow env), and two berth bundles: one with berth's compiled twin
(``compile=True``) and one without (``compile=False``). A berth whose ``save`` has no ``compile`` parameter
has no twins yet: its plain bundle is the "no twin" variant and the twin variant is reported as not available.
"""

from __future__ import annotations

import inspect
import json
import statistics
import subprocess
import time
import timeit
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.serving import setup_baselines
from bench.serving.common import APPS, ROW, WORK, log
from bench.serving.procs import busy_cpu_s, self_cpu_s, wait_quiet

TWIN, PLAIN = "twin", "no twin"  # the two berth variants
MODEL_KEYS = ("logreg", "forest", "gboost")
MLSERVER_MODEL = "iris"  # the model's name in MLServer's V2 routes
MLSERVER_MAX_BATCH_SIZE = 64  # as BentoML's and berth's batching
MLSERVER_MAX_BATCH_TIME_S = 0.002  # berth's default batching delay (2 ms)


@dataclass
class Model:
    key: str
    title: str
    joblib_path: Path
    mlflow_dir: Path
    mlserver_dir: Path
    features: list[str]
    bundles: dict[str, Path] = field(default_factory=dict)  # variant (TWIN, PLAIN) -> bundle directory
    bundle_errors: dict[str, str] = field(default_factory=dict)  # variant -> why it cannot be served
    twin: str | None = None  # what the twin bundle's manifest says about its compiled twin
    expected: Any = None
    inprocess: dict[str, float | None] = field(default_factory=dict)


def time_call(fn: Callable[[Any], Any], arg: Any, repeat: int) -> float:
    """Median seconds of ``fn(arg)`` over ``repeat`` timeit runs of about 0.2 s each."""
    fn(arg)
    timer = timeit.Timer(lambda: fn(arg))
    number, _ = timer.autorange()
    return statistics.median(timer.repeat(repeat=repeat, number=number)) / number


def save_accepts_compile(save: Callable[..., Any]) -> bool:
    """Whether ``berth.save`` names a ``compile`` parameter (a ``**options`` catch-all does not count: those
    go to the flavor)."""
    parameter = inspect.signature(save).parameters.get("compile")
    return parameter is not None and parameter.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                        inspect.Parameter.KEYWORD_ONLY)


def twin_summary(manifest: dict[str, Any], limit: int = 300) -> str | None:
    """What a bundle's manifest records about a compiled twin: the first entry (top level, or one level down)
    whose key mentions ``compil`` or ``twin``, as compact JSON cut at ``limit`` characters; None when there is
    none. The benchmark does not know the twin's manifest format, so it quotes it rather than interpret it."""
    def hits(mapping: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
        return [(prefix + k, v) for k, v in mapping.items()
                if isinstance(k, str) and ("compil" in k.lower() or "twin" in k.lower())]

    found = hits(manifest, "")
    if not found:
        for key, value in manifest.items():
            if isinstance(value, dict):
                found += hits(value, f"{key}.")
    if not found:
        return None
    key, value = found[0]
    text = f"{key}: {json.dumps(value, sort_keys=True, default=str)}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mlserver_settings(model: Model) -> dict[str, Any]:
    """MLServer's model-settings.json for ``model``: its scikit-learn runtime on the joblib file, adaptive
    batching on."""
    return {
        "name": MLSERVER_MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model.joblib_path)},
        "max_batch_size": MLSERVER_MAX_BATCH_SIZE,
        "max_batch_time": MLSERVER_MAX_BATCH_TIME_S,
    }


def _makers() -> dict[str, tuple[str, Callable[[], Any]]]:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "logreg": ("LogisticRegression", lambda: LogisticRegression(max_iter=1000)),
        "forest": ("RandomForestClassifier(n_estimators=100)",
                   lambda: RandomForestClassifier(n_estimators=100, random_state=0)),
        "gboost": ("GradientBoostingClassifier(n_estimators=100)",
                   lambda: GradientBoostingClassifier(n_estimators=100, random_state=0)),
    }


def _save_bundles(model: Model, estimator: Any, X: Any) -> None:
    import berth

    base = model.joblib_path.parent
    compile_ok = save_accepts_compile(berth.save)
    variants: dict[str, dict[str, Any]] = {PLAIN: {"compile": False} if compile_ok else {}}
    if compile_ok:
        variants[TWIN] = {"compile": True}
    else:
        model.bundle_errors[TWIN] = "not available: berth.save has no compile parameter (no compiled twins yet)"
    for variant, extra in variants.items():
        path = base / ("bundle-twin" if variant == TWIN else "bundle")
        try:
            berth.save(estimator, path, sample=X.head(20), reference=X, name=f"iris-{model.key}", overwrite=True,
                       **extra)
            model.bundles[variant] = path
        except Exception as error:  # berth is under construction: the baselines still run
            model.bundle_errors[variant] = f"berth.save failed: {type(error).__name__}: {error}"
            log(f"berth.save ({variant}) failed for {model.key}: {model.bundle_errors[variant]}")
    if TWIN in model.bundles:
        try:
            manifest = json.loads((model.bundles[TWIN] / "berth.json").read_text())
            model.twin = twin_summary(manifest) or "the manifest says nothing about a compiled twin"
        except (OSError, ValueError) as error:
            model.twin = f"manifest unreadable: {error}"
        log(f"{model.key}: twin bundle: {model.twin}")


def _time_inprocess(model: Model, estimator: Any, X: Any, repeat: int) -> None:
    import numpy as np
    import pandas as pd

    import berth

    row_np = np.array([ROW])
    row_df = pd.DataFrame([ROW], columns=X.columns)
    batch = X.sample(64, random_state=0)
    before = (time.monotonic(), busy_cpu_s(), self_cpu_s())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names" for the numpy row
        model.inprocess = {
            "predict_1_numpy_ms": time_call(estimator.predict, row_np, repeat) * 1e3,
            "predict_1_frame_ms": time_call(estimator.predict, row_df, repeat) * 1e3,
            "predict_64_per_row_ms": time_call(estimator.predict, batch, repeat) * 1e3 / 64,
            "berth_load_predict_1_ms": None,
            "berth_twin_load_predict_1_ms": None,
        }
    for variant, name in ((PLAIN, "berth_load_predict_1_ms"), (TWIN, "berth_twin_load_predict_1_ms")):
        if variant not in model.bundles:
            continue
        try:
            loaded = berth.load(model.bundles[variant])
            model.inprocess[name] = time_call(loaded.predict, row_df, repeat) * 1e3
        except Exception as error:
            log(f"timing berth.load(...).predict ({variant}) failed for {model.key}: {type(error).__name__}: "
                f"{error}")
    after = (time.monotonic(), busy_cpu_s(), self_cpu_s())
    model.inprocess["other_cpu_cores"] = round(
        max(0.0, after[1] - before[1] - (after[2] - before[2])) / (after[0] - before[0]), 2)
    log(f"{model.key}: in-process predict " + ", ".join(
        f"{k}={v:.3f}" for k, v in model.inprocess.items() if v is not None))


def prepare_models(keys: list[str], repeat: int, mlflow_env: dict[str, str], quiet_wait: float = 0.0) -> list[Model]:
    """Train, save for every server, and time in process (in this interpreter: berth's .venv)."""
    import joblib
    import pandas as pd
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    makers = _makers()
    models = []
    for key in keys:
        title, make = makers[key]
        base = WORK / "models" / key
        base.mkdir(parents=True, exist_ok=True)
        estimator = make().fit(X, y)
        model = Model(key, title, base / "model.joblib", base / "mlflow", base / "mlserver", list(X.columns))
        joblib.dump(estimator, model.joblib_path)
        model.mlserver_dir.mkdir(exist_ok=True)
        (model.mlserver_dir / "model-settings.json").write_text(json.dumps(mlserver_settings(model), indent=2))
        _save_bundles(model, estimator, X)
        model.expected = estimator.predict(pd.DataFrame([ROW], columns=X.columns)).tolist()[0]
        if quiet_wait > 0:
            wait_quiet(quiet_wait)
        _time_inprocess(model, estimator, X, repeat)
        models.append(model)
    # One MLflow process saves every model (its import alone takes several seconds).
    argv = [str(setup_baselines.env_python("mlflow")), str(APPS / "mlflow_save.py")]
    for model in models:
        argv += [str(model.joblib_path), str(model.mlflow_dir)]
    subprocess.run(argv, check=True, env=mlflow_env, timeout=600, stdout=subprocess.DEVNULL)
    return models
