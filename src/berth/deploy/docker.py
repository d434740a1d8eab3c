"""``berth build``: a Docker build context for one bundle.

The context holds

- ``model/``: the bundle, verified, copied into the image at ``/opt/ml/model`` (SageMaker's convention, used for
  every target so there is one layout);
- ``requirements.txt``: the flavor's libraries pinned from the manifest, plus berth (see ``requirements``);
- ``requirements.lock``: every package of the serving environment resolved from it for the image's Python and
  platform, pinned and hashed (see ``lock``); the Dockerfile installs it with ``--require-hashes --no-deps``
  (``--no-lock`` installs ``requirements.txt`` instead);
- ``wheels/``: berth's wheel, when berth is installed from a source tree;
- ``Dockerfile``: two stages. ``build`` makes a virtual environment at ``/opt/venv`` from the requirements; the
  runtime stage copies only that environment and the bundle onto the same slim Python base, runs as an
  unprivileged user, and starts ``berth serve`` (exec form, so the server is PID 1 and gets SIGTERM to drain).
  Settings are ``BERTH_*`` environment variables (``docker run -e BERTH_WORKERS=2``); the health check calls the
  liveness route with ``python -c`` (slim images have no curl). ``BERTH_HOME`` is ``/var/lib/berth``, a
  ``VOLUME`` owned by the server's user: the prediction log goes to ``/var/lib/berth/monitoring`` (mount a
  volume there to keep it, or set ``BERTH_MONITOR_DIR=s3://bucket/prefix`` to share it between containers);
- ``.dockerignore``.

The base image is ``python:X.Y-slim-bookworm`` for the Python X.Y the bundle was saved with.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from berth.contracts import LIVENESS_ROUTE, PORT_ENV
from berth.deploy import lock, requirements
from berth.deploy.targets import MODEL_DIR, Target, get_target
from berth.errors import UsageError
from berth.manifest import MANIFEST_NAME, Manifest, verify_directory
from berth.registry.default import registry_for
from berth.source import open_bundle

if TYPE_CHECKING:
    from berth.registry.store import Registry

USER_ID = 10001
VENV = "/opt/venv"
# berth's writable home in the image (the prediction log under monitoring/, the registry's default): a volume,
# owned by the unprivileged user, so a read-only root filesystem still leaves the log somewhere to go
HOME_DIR = "/var/lib/berth"
# the same port rule as the server's (berth.serving.platforms), without importing berth in the probe
HEALTH_PROBE = ("import os, urllib.request; port = "
                + "".join(f"os.environ.get('{variable}') or " for variable in PORT_ENV)
                + "os.environ.get('BERTH_PORT', '{port}'); "
                f"urllib.request.urlopen('http://127.0.0.1:' + port + '{LIVENESS_ROUTE}', timeout=4)")
CONTEXT_MARKER = "Dockerfile"


@dataclass(frozen=True)
class BuildContext:
    directory: Path
    manifest: Manifest
    target: Target
    port: int
    base_image: str
    image: str  # a suggested tag: berth-NAME:DIGEST12
    berth: requirements.BerthPackage

    def next_steps(self) -> list[str]:
        values = {"image": self.image, "context": self.directory, "port": self.port, "model_dir": MODEL_DIR,
                  "name": self.manifest.name}
        return [step.format(**values) for step in self.target.next_steps]


def default_base_image(manifest: Manifest) -> str:
    parts = manifest.python.split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise UsageError(f"the bundle records Python {manifest.python!r}; pass --base-image to choose an image")
    return f"python:{parts[0]}.{parts[1]}-slim-bookworm"


def image_name(manifest: Manifest) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in manifest.name.lower()).strip("-.") or "model"
    return f"berth-{name}:{manifest.content_digest.split(':')[1][:12]}"


def dockerfile(manifest: Manifest, *, base_image: str, port: int, env: dict[str, str], berth_line: str,
               has_wheels: bool, locked_for: str | None = None) -> str:
    """The Dockerfile's text; ``locked_for`` is the platform of ``requirements.lock`` (None: no lock)."""
    if any(c.isspace() for c in base_image) or not base_image:
        raise UsageError(f"--base-image {base_image!r} is not an image reference")
    settings = {"PATH": f"{VENV}/bin:$PATH", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
                "BERTH_HOST": "0.0.0.0", "BERTH_PORT": str(port), "BERTH_HOME": HOME_DIR, **env}
    env_lines = " \\\n    ".join(f"{key}={value}" for key, value in settings.items())
    probe = HEALTH_PROBE.format(port=port)
    copy_wheels = "COPY wheels/ ./wheels/\n" if has_wheels else ""
    if locked_for:
        requirements_file, install = lock.LOCK_NAME, "--require-hashes --no-deps -r " + lock.LOCK_NAME
        pinned = f"# every package pinned and hashed in {lock.LOCK_NAME}, for {locked_for}"
        build_line = f"docker build --platform {locked_for} -t {image_name(manifest)} ."
    else:
        requirements_file, install = "requirements.txt", "-r requirements.txt"
        pinned = "# not locked (--no-lock): berth's own dependencies float between builds"
        build_line = f"docker build -t {image_name(manifest)} ."
    return f"""\
# syntax=docker/dockerfile:1
# berth build: bundle {manifest.name} ({manifest.flavor}/{manifest.format}, {manifest.content_digest})
# saved with Python {manifest.python}; berth installed from: {berth_line}
{pinned}
#   {build_line}
#   docker run --rm -p {port}:{port} {image_name(manifest)}
# Settings are environment variables: docker run -e BERTH_WORKERS=2 -e BERTH_API_KEYS=... (docs/serving.md)

FROM {base_image} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY {requirements_file} ./
{copy_wheels}RUN python -m venv {VENV} \\
 && {VENV}/bin/pip install --no-cache-dir {install}

FROM {base_image}
ENV {env_lines}
RUN useradd --system --uid {USER_ID} --user-group --no-create-home --home-dir /nonexistent \\
    --shell /usr/sbin/nologin berth \\
 && mkdir -p {HOME_DIR} \\
 && chown {USER_ID}:{USER_ID} {HOME_DIR}
# the prediction log (BERTH_HOME/monitoring): writable even with a read-only root filesystem
VOLUME ["{HOME_DIR}"]
COPY --from=build {VENV} {VENV}
COPY model/ {MODEL_DIR}/
USER {USER_ID}:{USER_ID}
EXPOSE {port}
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \\
  CMD ["python", "-c", "{probe}"]
ENTRYPOINT ["berth", "serve", "{MODEL_DIR}"]
"""


DOCKERIGNORE = "**/__pycache__\n**/*.pyc\n**/.DS_Store\n"


def _prepare_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a directory")
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise UsageError(f"{output} is not empty; pass --overwrite to replace the build context in it")
        if not (output / CONTEXT_MARKER).is_file() or not (output / "model" / MANIFEST_NAME).is_file():
            raise UsageError(f"{output} does not look like a berth build context; refusing to replace it")
        shutil.rmtree(output)
    output.mkdir(parents=True, exist_ok=True)


def copy_bundle(uri: str | os.PathLike[str], destination: Path, *, registry: Registry | None = None) -> Manifest:
    """Copy the bundle at ``uri`` (directory, ``.berth`` archive, URL or ``models:/`` URI, resolved in
    ``registry``) to ``destination`` and verify the copy."""
    with open_bundle(uri, registry=registry) as bundle:
        manifest = bundle.manifest
        for name in [MANIFEST_NAME, *(entry.path for entry in manifest.files)]:
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(bundle.directory / name, target)
    verify_directory(destination, manifest)
    return manifest


def build_context(uri: str | os.PathLike[str], output: str | os.PathLike[str], *, target: str | None = None,
                  base_image: str | None = None, extra_requirements: list[str] | None = None,
                  port: int | None = None, berth_wheel: str | None = None,
                  overwrite: bool = False, registry: Registry | None = None, locked: bool = True,
                  platform: str = lock.DEFAULT_PLATFORM) -> BuildContext:
    """Write a Docker build context for the bundle at ``uri`` into the directory ``output``; a ``models:/`` URI
    resolves in ``registry`` (default: the one the environment names).

    With ``locked`` (the default), every package of the serving environment is resolved for ``platform`` and
    pinned with its hash in ``requirements.lock``, which the Dockerfile installs with ``--require-hashes``.
    """
    lock.platform_tags(platform)  # refuses an unknown platform before any work
    chosen = get_target(target)
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"--port {port}: expected 1 to 65535")
    if port is not None and chosen.fixed_port and port != chosen.port:
        raise UsageError(f"the {chosen.name} target listens on port {chosen.port}; the platform sends traffic "
                         f"there only (drop --port)")
    directory = Path(output).absolute()
    _prepare_output(directory, overwrite)
    try:
        manifest = copy_bundle(uri, directory / "model", registry=registry_for([str(uri)], registry))
        base = base_image or default_base_image(manifest)
        berth = requirements.berth_package(directory, berth_wheel)
        (directory / "requirements.txt").write_text(
            requirements.render(manifest, berth, list(extra_requirements or [])))
        if locked:
            lock.write_lock(directory, manifest.python, platform)
        chosen_port = port or chosen.port
        (directory / "Dockerfile").write_text(dockerfile(
            manifest, base_image=base, port=chosen_port, env=chosen.env, berth_line=berth.requirement,
            has_wheels=berth.wheel is not None, locked_for=platform if locked else None))
        (directory / ".dockerignore").write_text(DOCKERIGNORE)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return BuildContext(directory, manifest, chosen, chosen_port, base, image_name(manifest), berth)
