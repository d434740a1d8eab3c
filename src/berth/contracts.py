"""What cloud platforms expect of a serving container, in one place: ports, variables, paths and routes.

The server honours them (:mod:`berth.serving.platforms`) and ``berth build`` / ``berth deploy`` write images and
manifests that rely on them (:mod:`berth.deploy.targets`, :mod:`berth.deploy.docker`). Plain constants, no
imports: both sides read them without pulling in the other.
"""

from __future__ import annotations

PLATFORM_PORT = 8080  # SageMaker's fixed port, and the port of every image berth builds
MODEL_DIR = "/opt/ml/model"  # SageMaker's model directory; berth's images keep the bundle there on every platform
START_ARGUMENT = "serve"  # SageMaker starts a container as `docker run IMAGE serve`

SAGEMAKER_PORT_ENV = "SAGEMAKER_BIND_TO_PORT"
VERTEX_PORT_ENV = "AIP_HTTP_PORT"
VERTEX_PREDICT_ROUTE_ENV = "AIP_PREDICT_ROUTE"
VERTEX_HEALTH_ROUTE_ENV = "AIP_HEALTH_ROUTE"
VERTEX_ENV = (VERTEX_PORT_ENV, VERTEX_PREDICT_ROUTE_ENV, VERTEX_HEALTH_ROUTE_ENV)
PORT_ENV = (SAGEMAKER_PORT_ENV, VERTEX_PORT_ENV)  # a platform's port variable wins over BERTH_PORT
PLATFORM_SETTING_ENV = "BERTH_PLATFORM"  # ServeSettings.platform

LIVENESS_ROUTE = "/health/live"
READINESS_ROUTE = "/health/ready"
SAGEMAKER_PING_ROUTE = "/ping"
INVOCATIONS_ROUTE = "/invocations"
AZURE_SCORE_ROUTE = "/score"
VERTEX_FALLBACK_ROUTES = ("/vertex/predict", "/vertex/health")  # when AIP_* routes are unset (local runs)
