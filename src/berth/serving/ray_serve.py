"""``berth serve --backend ray``: the same server (``create_app``) as replicas of one Ray Serve deployment.

Each replica is a Ray actor that builds berth's own ASGI app: the same routes, validation, batching, errors and
metrics as ``berth serve``, nothing re-implemented. Ray Serve's HTTP proxy spreads requests over the replicas,
restarts a replica whose process dies, and scales between ``--autoscale MIN:MAX`` replicas on load.

- **Loading**: a replica loads and verifies its models in its constructor, so it joins the proxy's routing only
  once it can answer, and a model that cannot load fails the deployment with berth's own message. ``serve.run``
  returns once every replica is ready; only then does the command say it is serving.
- **Identity**: every response carries ``x-berth-replica`` (Ray's replica id) and ``x-berth-pid``, so a log
  line, a slow request or a metric can be traced to one replica.
- **Metrics**: replicas on one node share a Prometheus multi-process directory (the same mechanism as
  ``--workers``), so ``/metrics``, whichever replica answers, sums every replica of that node; samples of a
  replica that died keep counting (counters never go back), and its live gauges are dropped when a new replica
  starts. On a cluster of several nodes each node has its own sum: see docs/deploy.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth import storage
from berth.errors import BerthError, UsageError
from berth.serving.settings import ServeSettings

log = logging.getLogger("berth.serve")
APP_NAME = "berth"
METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONSTRUCTOR_RETRIES = 3


@dataclass(frozen=True)
class RayServeOptions:
    """How many replicas, and where: a fixed count, or autoscaling bounds; a cluster address or a local Ray."""

    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    address: str | None = None
    replica_cpus: float = 1.0
    name: str = APP_NAME

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise UsageError(f"--replicas must be at least 1, not {self.replicas}")
        if self.autoscale is not None:
            low, high = self.autoscale
            if low < 0 or high < 1 or low > high:
                raise UsageError(f"--autoscale needs 0 <= MIN <= MAX and MAX >= 1, not {low}:{high}")

    @property
    def most_replicas(self) -> int:
        return self.autoscale[1] if self.autoscale else self.replicas


def parse_autoscale(text: str) -> tuple[int, int]:
    """``"1:4"`` -> ``(1, 4)``."""
    match = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--autoscale takes MIN:MAX replicas, e.g. 1:4, not {text!r}")
    return int(match[1]), int(match[2])


def options_from_cli(backend: str, replicas: int | None, autoscale: str | None, address: str | None,
                     workers: int | None) -> RayServeOptions:
    """The options of ``berth serve --backend ray``, refusing those that belong to the other backend."""
    if backend != "ray":
        if backend != "local":
            raise UsageError(f"--backend is local or ray, not {backend!r}")
        raise UsageError("--replicas, --autoscale and --address go with --backend ray")
    if workers is not None:
        raise UsageError("--workers is for the local backend; on Ray give --replicas N or --autoscale MIN:MAX")
    if replicas is not None and autoscale is not None:
        raise UsageError("give either --replicas or --autoscale, not both")
    return RayServeOptions(replicas=replicas or 1, autoscale=parse_autoscale(autoscale) if autoscale else None,
                           address=address)


class ReplicaHeaders:
    """Pure ASGI middleware: names the replica that answered in every HTTP response."""

    def __init__(self, app: ASGIApp, replica: str) -> None:
        self.app = app
        self.headers = [(b"x-berth-replica", replica.encode()), (b"x-berth-pid", str(os.getpid()).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_named)


class BerthReplica:
    """One Ray Serve replica: loads and verifies the models, then builds berth's app around them.

    Ray wraps this class with ``serve.ingress()``; ``__serve_build_asgi_app__`` is Ray's hook for an app built
    in the replica (after the constructor) rather than pickled from the driver.
    """

    def __init__(self, sources: list[str], settings: dict[str, Any]) -> None:
        from berth.registry.default import registry_for
        from berth.serving.dataplane import ModelSource, load_source

        self.settings = ServeSettings.model_validate(settings)
        metrics_dir = os.environ.get(METRICS_DIR_ENV)
        if metrics_dir:
            os.makedirs(metrics_dir, exist_ok=True)
            forget_dead_replicas(metrics_dir)
        # a BerthError here fails the replica with berth's own message (the deployment reports it)
        named = [ModelSource.of(source) for source in sources]  # NAME=URI keeps its name on every replica
        registry = registry_for(named, None, self.settings.registry_url)  # this process's entry point
        self.sources = [ModelSource(model=load_source(source.uri or "", trust=self.settings.trust,
                                                      registry=registry, compiled=self.settings.compiled),
                                    name=source.name) for source in named]
        self.berth_app: Any = None

    def __serve_build_asgi_app__(self) -> ASGIApp:
        from ray import serve

        from berth.serving.app import create_app

        self.berth_app = create_app(self.sources, self.settings, load_in_background=False)
        replica = serve.get_replica_context().replica_id.unique_id
        self.berth_app.add_middleware(ReplicaHeaders, replica=replica)
        return self.berth_app

    def check_health(self) -> None:
        """Ray's periodic health check: a replica whose models did not load is replaced."""
        plane = self.berth_app.state.plane if self.berth_app is not None else None
        if plane is not None and plane.loading_done and not plane.ready:
            raise RuntimeError(f"models not served: {plane.problems}")


def forget_dead_replicas(directory: str) -> None:
    """Drop the live gauges (in flight, queue depth) of replica processes that died, from the metrics files."""
    from prometheus_client import multiprocess

    for file in Path(directory).glob("gauge_live*_*.db"):
        pid = int(file.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, another user's


def deployment(sources: Sequence[str], settings: ServeSettings, options: RayServeOptions,
               metrics_dir: str) -> Any:
    """The Ray Serve application (bound deployment) serving ``sources``."""
    from ray import serve

    scaling: dict[str, Any] = {"num_replicas": options.replicas}
    if options.autoscale is not None:
        low, high = options.autoscale
        # a replica with a quarter of a full batch waiting is busy enough: beyond, latency grows with the queue
        scaling = {"autoscaling_config": {"min_replicas": low, "initial_replicas": max(low, 1),
                                          "max_replicas": high,
                                          "target_ongoing_requests": max(2, settings.max_batch_size // 4)}}
    ingress = serve.ingress()(BerthReplica)
    return serve.deployment(
        name=options.name,
        # enough concurrent requests per replica for the batcher to form full batches
        max_ongoing_requests=max(100, 2 * settings.max_batch_size),
        ray_actor_options={"num_cpus": options.replica_cpus,
                           "runtime_env": {"env_vars": {METRICS_DIR_ENV: metrics_dir,
                                                        "RAY_USAGE_STATS_ENABLED": "0"}}},
        graceful_shutdown_timeout_s=settings.graceful_timeout_s,
        health_check_period_s=5,
        max_constructor_retry_count=CONSTRUCTOR_RETRIES,
        **scaling,
    )(ingress).bind(list(sources), settings.model_dump(mode="json"))


def replica_settings(settings: ServeSettings, options: RayServeOptions) -> ServeSettings:
    """The replicas' settings, with the prediction log's place resolved here, once: a replica's environment (on
    another node, or started by Ray with its own variables) may have another BERTH_HOME, or none."""
    from berth.monitoring.store import monitor_dir

    if settings.monitor_dir is None:
        settings = settings.model_copy(update={"monitor_dir": str(monitor_dir())})
    where = str(settings.monitor_dir)
    if settings.log_predictions and options.address is not None and not storage.is_remote(where):
        log.warning("prediction log at %s: on a Ray cluster each node writes its own disk there; give "
                    "--monitor-dir s3://bucket/prefix (or another shared URL) for one log of all replicas", where)
    return settings


def absolute_sources(sources: Sequence[str]) -> list[str]:
    """Local paths made absolute (replicas do not share the command's working directory); URLs as given."""
    return [str(storage.local_path(s).absolute()) if not storage.is_remote(s) and storage.exists(s) else str(s)
            for s in sources]


def run(sources: Sequence[str], settings: ServeSettings, options: RayServeOptions,
        stop: threading.Event | None = None) -> None:
    """Deploy ``sources`` on Ray and serve until SIGTERM / Ctrl-C (or ``stop``); then remove the deployment."""
    from berth.ray_runtime import import_ray, ray_instance

    import_ray()
    from ray import serve

    uris = absolute_sources(sources)
    settings = replica_settings(settings, options)
    if options.address is None:
        from berth.importer import is_plain_model_file
        from berth.model import inspect

        for uri in uris:  # a missing or broken local bundle fails here, before Ray starts
            if ":" not in uri and not is_plain_model_file(uri):
                inspect(uri)
    stop = stop or threading.Event()
    previous: dict[signal.Signals, Any] = {}
    metrics_dir = os.path.join(tempfile.gettempdir(), f"berth-ray-metrics-{options.name}-{uuid.uuid4().hex[:8]}")
    cpus = max(os.cpu_count() or 1, int(options.most_replicas * options.replica_cpus + 0.999))
    try:
        with ray_instance(options.address, num_cpus=cpus) as local:
            if threading.current_thread() is threading.main_thread():  # after ray.init, which sets its own
                for sig in (signal.SIGTERM, signal.SIGINT):
                    previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
            serve.start(http_options={"host": settings.host, "port": settings.port})
            try:
                serve.run(deployment(uris, settings, options, metrics_dir), name=options.name, route_prefix="/")
            except RuntimeError as exc:
                raise BerthError(f"the Ray Serve deployment failed: {deployment_problem(options.name, exc)}") from None
            try:
                replicas = (f"{options.autoscale[0]}-{options.autoscale[1]} replicas (autoscaling)"
                            if options.autoscale else f"{options.replicas} replica(s)")
                log.info("serving on http://%s:%s with %s on %s", settings.host, settings.port, replicas,
                         "a local Ray instance" if local else options.address)
                print(f"berth: serving on http://{settings.host}:{settings.port} with {replicas} on Ray",
                      flush=True)
                while not stop.wait(0.5):
                    pass
                log.info("stopping: draining the replicas")
            finally:
                with contextlib.suppress(Exception):
                    serve.delete(options.name)
                if local:
                    serve.shutdown()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        import shutil

        shutil.rmtree(metrics_dir, ignore_errors=True)


def deployment_problem(name: str, exc: BaseException) -> str:
    """The most telling line of why a deployment failed: the replica's own error, from Serve's status."""
    from ray import serve

    text = str(exc)
    with contextlib.suppress(Exception):  # the status is a better source when there is one
        text = serve.status().applications[name].deployments[name].message or text
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b.*:", line)]
    return (errors or lines or [type(exc).__name__])[-1]
