"""Set up what the serving benchmark compares berth with: one virtual environment per baseline, and wrk.

    .venv/bin/python -m bench.serving.setup_baselines          # idempotent; about a second when already done

Environments live in ``bench/.envs/NAME`` (git-ignored):

- ``flask``: the tutorial's Flask app, run by Flask's own server and by gunicorn;
- ``mlflow``: ``mlflow models serve --env-manager local``;
- ``bentoml``: a BentoML service, with and without adaptive batching;
- ``mlserver``: Seldon's MLServer with its scikit-learn runtime (``mlserver start``), adaptive batching on.

Each gets the same scikit-learn, joblib and numpy as berth's own ``.venv`` (read from it, so that one model
file loads everywhere and predicts with the same code); the servers themselves are pinned below to releases
that install on this machine (Python 3.11, PyPI). An environment is rebuilt only when its requirement list
changes (a stamp file inside it records the list it was built from). wrk comes from Debian's packages.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENVS = ROOT / "bench" / ".envs"
BERTH_PYTHON = ROOT / ".venv" / "bin" / "python"
STAMP = ".bench-requirements"

# The servers, pinned. Newer releases existed on PyPI's index but did not resolve here (mlflow 3.18.0 needs an
# unpublished mlflow-skinny; bentoml 1.4.40 an unpublished certifi), so these are the newest that install.
PINS: dict[str, list[str]] = {
    "flask": ["flask==3.1.3", "gunicorn==27.0.1"],
    "mlflow": ["mlflow==3.17.2"],
    "bentoml": ["bentoml==1.4.39"],
    # uvloop 0.22 and later raise in asyncio.get_event_loop() without a running loop, which MLServer 1.7.1's
    # inference-pool workers call at start (they then die and the model never loads).
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop<0.22"],
}
# Taken from berth's .venv at setup time, so every server loads the same pickle with the same code.
SHARED = ["scikit-learn", "joblib", "numpy"]


def log(message: str) -> None:
    print(f"[setup] {message}", file=sys.stderr, flush=True)


def shared_pins() -> list[str]:
    """``name==version`` of :data:`SHARED` as installed in berth's .venv (falls back to this interpreter)."""
    python = str(BERTH_PYTHON) if BERTH_PYTHON.exists() else sys.executable
    code = (
        "import importlib.metadata as m, json; "
        f"print(json.dumps({{n: m.version(n) for n in {SHARED!r}}}))"
    )
    versions = json.loads(subprocess.run([python, "-c", code], check=True, capture_output=True,
                                         text=True, timeout=120).stdout)
    return [f"{name}=={versions[name]}" for name in SHARED]


def env_python(name: str) -> Path:
    return ENVS / name / "bin" / "python"


def base_python() -> str:
    """The interpreter to build environments from: Python 3.11 of the machine (berth's .venv is built on it)."""
    for candidate in (getattr(sys, "_base_executable", None), shutil.which("python3.11"), shutil.which("python3")):
        if candidate and Path(candidate).exists():
            return candidate
    return sys.executable


def ensure_env(name: str, requirements: list[str]) -> bool:
    """Create or update ``bench/.envs/NAME`` so it holds exactly ``requirements``; True when it did any work."""
    env = ENVS / name
    stamp = env / STAMP
    wanted = "\n".join(requirements) + "\n"
    python = env_python(name)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        ok = subprocess.run([str(python), "-c", "import sys"], capture_output=True, timeout=60).returncode == 0
        if ok:
            return False
    started = time.monotonic()
    if not python.exists():
        log(f"creating {env}")
        subprocess.run([base_python(), "-m", "venv", str(env)], check=True, timeout=300)
    log(f"installing into {name}: {' '.join(requirements)}")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    if done.returncode != 0:  # pip's output only when it failed: this machine's index setup makes it chatty
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise RuntimeError(f"pip install into {env} failed (exit {done.returncode})")
    stamp.write_text(wanted)
    log(f"{name} ready in {time.monotonic() - started:.0f} s")
    return True


def ensure_wrk() -> str:
    """Path of wrk, installing Debian's package (non-interactively) when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    log("installing wrk from Debian's packages")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    install = [*prefix, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    if subprocess.run(install, env=apt_env, timeout=600).returncode != 0:
        subprocess.run([*prefix, "apt-get", "update", "-qq"], env=apt_env, check=True, timeout=600)
        subprocess.run(install, env=apt_env, check=True, timeout=600)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install wrk")
    return found


def requirements() -> dict[str, list[str]]:
    shared = shared_pins()
    return {name: [*pins, *shared] for name, pins in PINS.items()}


def setup(names: list[str] | None = None) -> dict[str, list[str]]:
    """Make every environment (or those in ``names``) and wrk ready; returns the requirements of each env."""
    started = time.monotonic()
    ENVS.mkdir(parents=True, exist_ok=True)
    reqs = requirements()
    worked = False
    for name, wanted in reqs.items():
        if names is None or name in names:
            worked |= ensure_env(name, wanted)
    ensure_wrk()
    if worked:
        log(f"baselines set up in {time.monotonic() - started:.0f} s")
    return reqs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", metavar="ENV", help=f"only these of {', '.join(PINS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.envs) - set(PINS))
    if unknown:
        parser.error(f"unknown environment(s): {', '.join(unknown)}")
    for name, reqs in setup(args.envs or None).items():
        print(f"{name}: {ENVS / name} ({' '.join(reqs)})")
    print(f"wrk: {shutil.which('wrk')}")


if __name__ == "__main__":
    main()
