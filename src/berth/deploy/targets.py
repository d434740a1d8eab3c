"""Defaults of ``berth build --target``: the port, the environment, and what to do next, per platform.

The server itself satisfies every platform's contract at once (``berth.serving.platforms``); a target only sets
the defaults that platform expects and prints the next steps. Without a target the image is a plain berth
server on port 8080 that still answers SageMaker's ``serve`` argument and Vertex AI's ``AIP_*`` variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from berth.contracts import MODEL_DIR, PLATFORM_PORT, PLATFORM_SETTING_ENV
from berth.errors import UsageError

CONTAINER_PORT = PLATFORM_PORT
__all__ = ["CONTAINER_PORT", "MODEL_DIR", "TARGETS", "Target", "get_target"]


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    env: dict[str, str] = field(default_factory=dict)
    fixed_port: bool = False  # the platform sends traffic to this port only
    next_steps: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "generic": Target("generic", CONTAINER_PORT, next_steps=(
        "docker build -t {image} {context}",
        "docker run --rm -p {port}:{port} {image}",
        "curl -s localhost:{port}/predict -H 'content-type: application/json' -d '{{\"instances\": [...]}}'",
    )),
    "sagemaker": Target("sagemaker", CONTAINER_PORT, {PLATFORM_SETTING_ENV: "sagemaker"}, fixed_port=True, next_steps=(
        "docker build -t {image} {context}  (push it to ECR)",
        "SageMaker runs `docker run IMAGE serve`: berth listens on 8080 (or $SAGEMAKER_BIND_TO_PORT) and answers "
        "GET /ping and POST /invocations",
        "the bundle is baked in at {model_dir}; a ModelDataUrl, if you give one, must hold a bundle "
        "(tar -czf model.tar.gz -C BUNDLE .)",
    )),
    "vertex": Target("vertex", CONTAINER_PORT, {PLATFORM_SETTING_ENV: "vertex"}, next_steps=(
        "docker build -t {image} {context}  (push it to Artifact Registry)",
        "gcloud ai models upload --region=REGION --display-name={name} --container-image-uri=IMAGE "
        "--container-ports={port}",
        "berth reads AIP_HTTP_PORT, AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE; requests are "
        "{{\"instances\": [...], \"parameters\": {{...}}}}, answers {{\"predictions\": [...]}}",
    )),
    "azure": Target("azure", CONTAINER_PORT, next_steps=(
        "docker build -t {image} {context}  (push it to your Azure container registry)",
        "environment inference_config: liveness_route {{port: {port}, path: /health/live}}, readiness_route "
        "{{port: {port}, path: /health/ready}}, scoring_route {{port: {port}, path: /score}}",
    )),
    "kserve": Target("kserve", CONTAINER_PORT, next_steps=(
        "docker build -t {image} {context}  (push it to your registry)",
        "berth deploy k8s BUNDLE -o k8s/ --image IMAGE --kserve; kubectl apply -f k8s/inferenceservice.yaml",
        "clients use the Open Inference Protocol: POST /v2/models/{name}/infer",
    )),
}


def get_target(name: str | None) -> Target:
    key = (name or "generic").lower()
    if key not in TARGETS:
        raise UsageError(f"unknown target {name!r}; choose one of: {', '.join(sorted(TARGETS))}")
    return TARGETS[key]
