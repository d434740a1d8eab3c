"""``berth deploy k8s``: Kubernetes manifests for one bundle served from the image ``berth build`` makes.

Written, one resource per file so each can be read and changed on its own:

- ``configmap.yaml``: the server's settings as ``BERTH_*`` variables (the pods read them with ``envFrom``);
- ``deployment.yaml``: probes on berth's health routes (startup and liveness on ``/health/live``, readiness on
  ``/health/ready``), resource requests and limits, one worker process per requested CPU, an unprivileged
  read-only container, and graceful termination matched to berth's drain: a ``preStop`` pause lets the Service
  stop routing to the pod, then SIGTERM makes berth finish in-flight requests for up to ``graceful_timeout_s``;
  ``terminationGracePeriodSeconds`` covers both with a margin;
  ``BERTH_HOME`` (``/var/lib/berth``, where the prediction log goes) is a volume: an ``emptyDir`` by default
  (the log lives as long as the pod), a PersistentVolumeClaim with ``home_claim``; to share one log between all
  replicas set ``monitor_dir`` to an object store (``--set monitor_dir=s3://bucket/prefix``);
- ``service.yaml``: a ClusterIP Service on port 80;
- ``hpa.yaml``: an ``autoscaling/v2`` HorizontalPodAutoscaler on CPU utilisation;
- ``kserve/inferenceservice.yaml`` (with ``kserve=True``): the same container as a KServe ``InferenceService``,
  in its own directory so ``kubectl apply -f DIR`` does not deploy the model twice.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.deploy.docker import HOME_DIR, USER_ID, image_name
from berth.deploy.targets import CONTAINER_PORT
from berth.errors import UsageError
from berth.manifest import Manifest

PRE_STOP_SECONDS = 5  # time for the endpoints controller to take the pod out of the Service before SIGTERM
EXIT_MARGIN_SECONDS = 5  # after the drain: closing the model threads and the process
NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
MIB = 1024 * 1024


@dataclass
class KubernetesOptions:
    image: str | None = None
    name: str | None = None
    namespace: str | None = None
    replicas: int = 2
    min_replicas: int | None = None
    max_replicas: int = 10
    cpu_utilization: int = 70
    cpu: str = "1"
    memory: str | None = None  # default: from the bundle's size
    cpu_limit: str | None = None  # default: the request
    memory_limit: str | None = None  # default: the request
    port: int = CONTAINER_PORT
    graceful_timeout_s: float = 30.0
    settings: dict[str, str] = field(default_factory=dict)  # more BERTH_* variables
    kserve: bool = False
    home_claim: str | None = None  # a PersistentVolumeClaim for BERTH_HOME instead of an emptyDir
    home_size: str = "1Gi"  # the emptyDir's size limit


def resource_name(manifest: Manifest, name: str | None) -> str:
    if name is not None:
        if not NAME_PATTERN.match(name) or len(name) > 63:
            raise UsageError(f"--name {name!r}: a Kubernetes name is at most 63 lowercase letters, digits and '-', "
                             "starting and ending with a letter or digit")
        return name
    cleaned = re.sub(r"[^a-z0-9-]+", "-", manifest.name.lower()).strip("-") or "model"
    return f"berth-{cleaned}"[:63].rstrip("-")


def cpu_cores(quantity: str) -> float:
    if not QUANTITY.match(quantity) or quantity[-1:] not in "0123456789m":
        raise UsageError(f"CPU quantity {quantity!r}: expected cores such as 1, 0.5 or 500m")
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def check_quantity(what: str, quantity: str) -> str:
    if not QUANTITY.match(quantity):
        raise UsageError(f"{what} {quantity!r} is not a Kubernetes quantity (e.g. 512Mi, 2Gi, 500m)")
    return quantity


def default_memory(manifest: Manifest, workers: int) -> str:
    """Each worker holds its own copy of the model: 320 MiB of interpreter and libraries (a berth server with a
    scikit-learn model measured 220 MiB resident), plus four times the
    payload (a deserialised model is usually larger than its file), rounded up to 64 MiB."""
    per_worker = 320 * MIB + 4 * manifest.size
    total = workers * per_worker
    return f"{math.ceil(total / (64 * MIB)) * 64}Mi"


def settings_env(options: KubernetesOptions, workers: int) -> dict[str, str]:
    from berth.serving.settings import ServeSettings

    env = {"BERTH_HOST": "0.0.0.0", "BERTH_PORT": str(options.port), "BERTH_WORKERS": str(workers),
           "BERTH_GRACEFUL_TIMEOUT_S": f"{options.graceful_timeout_s:g}", "BERTH_HOME": HOME_DIR}
    known = {f"BERTH_{name.upper()}" for name in ServeSettings.model_fields}
    for key, value in options.settings.items():
        variable = key if key.startswith("BERTH_") else f"BERTH_{key.upper()}"
        if variable not in known:
            raise UsageError(f"--set {key}: not a server setting; known: "
                             + ", ".join(sorted(k.removeprefix("BERTH_").lower() for k in known)))
        if variable in ("BERTH_HOST", "BERTH_PORT", "BERTH_GRACEFUL_TIMEOUT_S"):
            raise UsageError(f"--set {key}: use --port / --graceful-timeout-s, which the probes and the grace "
                             "period follow" if variable != "BERTH_HOST" else "--set host: the pod must listen "
                             "on 0.0.0.0")
        env[variable] = value
    if env.get("BERTH_AUTH_ALL", "").lower() in ("1", "true", "yes", "on"):
        raise UsageError("--set auth_all=true would make the health routes need a key, and the probes would fail")
    return env


def container(manifest: Manifest, options: KubernetesOptions, image: str, workers: int, name: str, *,
              env_from: bool, env: dict[str, str]) -> dict[str, Any]:
    memory = check_quantity("--memory", options.memory or default_memory(manifest, workers))
    requests = {"cpu": options.cpu, "memory": memory}
    limits = {"cpu": options.cpu_limit or options.cpu,
              "memory": check_quantity("--memory-limit", options.memory_limit or memory)}
    cpu_cores(limits["cpu"])

    def probe(path: str, period: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "timeoutSeconds": 3,
                "failureThreshold": failures}

    spec: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": options.port, "protocol": "TCP"}],
        "resources": {"requests": requests, "limits": limits},
        # while the models load (up to 5 minutes): the other probes wait for this one
        "startupProbe": probe("/health/live", 5, 60),
        "livenessProbe": probe("/health/live", 10, 3),
        "readinessProbe": probe("/health/ready", 5, 2),
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
                            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "berth-home", "mountPath": HOME_DIR}],
    }
    if env_from:
        spec["envFrom"] = [{"configMapRef": {"name": name}}]
    else:
        spec["env"] = [{"name": key, "value": value} for key, value in env.items()]
    return spec


def manifests(manifest: Manifest, options: KubernetesOptions) -> dict[str, dict[str, Any]]:
    """The resources, by the file name they are written to."""
    name = resource_name(manifest, options.name)
    image = options.image or image_name(manifest)
    if options.replicas < 1 or options.max_replicas < 1:
        raise UsageError("--replicas and --max-replicas must be at least 1")
    min_replicas = options.min_replicas or options.replicas
    if not 1 <= min_replicas <= options.max_replicas:
        raise UsageError(f"replicas: expected 1 <= min ({min_replicas}) <= max ({options.max_replicas})")
    if not 1 <= options.cpu_utilization <= 100:
        raise UsageError("--cpu-utilization: expected a percentage, 1 to 100")
    if options.graceful_timeout_s < 0:
        raise UsageError("--graceful-timeout-s must not be negative")
    workers = max(1, math.floor(cpu_cores(options.cpu)))
    env = settings_env(options, workers)
    digest = manifest.content_digest
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "model-server",
              "app.kubernetes.io/version": digest.split(":")[1][:12], "app.kubernetes.io/managed-by": "berth"}
    selector = {"app.kubernetes.io/name": name}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if options.namespace:
        if not NAME_PATTERN.match(options.namespace):
            raise UsageError(f"--namespace {options.namespace!r} is not a Kubernetes name")
        metadata["namespace"] = options.namespace
    grace = PRE_STOP_SECONDS + math.ceil(options.graceful_timeout_s) + EXIT_MARGIN_SECONDS
    config_hash = hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()[:16]
    # fsGroup: a mounted claim is made writable by the server's group
    pod_security = {"runAsNonRoot": True, "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}}
    if options.home_claim is not None and (not NAME_PATTERN.match(options.home_claim)
                                           or len(options.home_claim) > 253):
        raise UsageError(f"--home-claim {options.home_claim!r} is not a Kubernetes name")
    home = ({"persistentVolumeClaim": {"claimName": options.home_claim}} if options.home_claim
            else {"emptyDir": {"sizeLimit": check_quantity("--home-size", options.home_size)}})
    volumes = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}, {"name": "berth-home", **home}]
    annotations = {"berth/model": manifest.name, "berth/content-digest": digest, "berth/config-hash": config_hash,
                   "prometheus.io/scrape": "true", "prometheus.io/port": str(options.port),
                   "prometheus.io/path": "/metrics"}
    resources: dict[str, dict[str, Any]] = {
        "configmap.yaml": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": env},
        "deployment.yaml": {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {
                "replicas": min_replicas,
                "selector": {"matchLabels": selector},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": labels, "annotations": annotations},
                    "spec": {
                        "terminationGracePeriodSeconds": grace,
                        "securityContext": pod_security,
                        "containers": [container(manifest, options, image, workers, name, env_from=True, env=env)],
                        "volumes": volumes,
                    },
                },
            },
        },
        "service.yaml": {
            "apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"type": "ClusterIP", "selector": selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]},
        },
        "hpa.yaml": {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": metadata,
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": min_replicas, "maxReplicas": options.max_replicas,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                    "type": "Utilization", "averageUtilization": options.cpu_utilization}}}],
            },
        },
    }
    if options.kserve:
        resources["kserve/inferenceservice.yaml"] = {
            "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": {**metadata, "annotations": {"berth/content-digest": digest}},
            "spec": {"predictor": {
                "minReplicas": min_replicas, "maxReplicas": options.max_replicas,
                "terminationGracePeriodSeconds": grace,
                "securityContext": pod_security,
                # KServe's own name for the serving container; settings inline, so the resource stands alone
                "containers": [container(manifest, options, image, workers, "kserve-container", env_from=False,
                                         env=env)],
                "volumes": volumes,
            }},
        }
    return json.loads(json.dumps(resources))  # no shared objects: YAML gets no anchors


def write(manifest: Manifest, output: str | os.PathLike[str], options: KubernetesOptions, *,
          overwrite: bool = False) -> list[Path]:
    """Write the manifests as YAML into the directory ``output``; returns the files written."""
    import yaml

    resources = manifests(manifest, options)
    directory = Path(output)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{output} exists and is not a directory")
    existing = [directory / name for name in resources if (directory / name).exists()]
    if existing and not overwrite:
        raise UsageError(f"{existing[0]} exists; pass --overwrite to replace the manifests in {output}")
    written = []
    for file_name, resource in resources.items():
        path = directory / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# berth deploy k8s: {manifest.name} ({manifest.content_digest})\n"
                        + yaml.safe_dump(resource, sort_keys=False, default_flow_style=False))
        written.append(path)
    return written
