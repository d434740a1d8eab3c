"""berth deploy k8s: manifests validated against the Kubernetes JSON schemas, and matched to the server.

The schemas are those the ``kubernetes-validate`` package ships (strict variants, which refuse unknown fields),
read from its own files: no network. KServe's InferenceService is a custom resource with no schema there: it
gets a structural check of ours, and its pod part (the predictor minus KServe's own fields) is validated as a
Kubernetes Pod.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

from berth.cli import app
from berth.deploy.kubernetes import KubernetesOptions, manifests, write
from berth.errors import UsageError
from berth.model import inspect
from berth.serving.settings import ServeSettings
from tests.serving.conftest import make_client

VERSION = kubernetes_validate.latest_version()
KSERVE_COMPONENT_FIELDS = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency",
                           "timeout", "canaryTrafficPercent", "logger", "batcher"}


def validate(resource: dict[str, Any]) -> None:
    kubernetes_validate.validate(resource, VERSION, strict=True)


def check_inference_service(resource: dict[str, Any]) -> None:
    """KServe v1beta1 InferenceService: what KServe's API requires, and the pod part as a Kubernetes Pod."""
    assert resource["apiVersion"] == "serving.kserve.io/v1beta1" and resource["kind"] == "InferenceService"
    assert set(resource) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(resource["spec"]) == {"predictor"}
    predictor = resource["spec"]["predictor"]
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]
    assert [c["name"] for c in predictor["containers"]] == ["kserve-container"]
    pod_spec = {k: v for k, v in predictor.items() if k not in KSERVE_COMPONENT_FIELDS}
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": resource["metadata"], "spec": pod_spec})


@pytest.fixture
def resources(iris_bundle: Path) -> dict[str, dict[str, Any]]:
    return manifests(inspect(iris_bundle), KubernetesOptions(image="registry.example/berth-iris:1", kserve=True))


def test_every_manifest_is_valid(tmp_path: Path, iris_bundle: Path) -> None:
    written = write(inspect(iris_bundle), tmp_path / "k8s", KubernetesOptions(kserve=True, namespace="models"))
    names = sorted(str(p.relative_to(tmp_path / "k8s")) for p in written)
    assert names == ["configmap.yaml", "deployment.yaml", "hpa.yaml", "kserve/inferenceservice.yaml", "service.yaml"]
    kinds = set()
    for path in written:
        text = path.read_text()
        assert "&id" not in text and "*id" not in text  # no YAML anchors: each file reads on its own
        resource = yaml.safe_load(text)
        kinds.add(resource["kind"])
        assert resource["metadata"]["namespace"] == "models"
        if resource["kind"] == "InferenceService":
            check_inference_service(resource)
        else:
            validate(resource)
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "InferenceService"}


def test_validation_is_live(resources: dict[str, dict[str, Any]]) -> None:
    """The schemas refuse what is wrong, so the passing test above means something."""
    deployment = resources["deployment.yaml"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = 7
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    service = resources["service.yaml"]
    service["spec"]["portz"] = service["spec"].pop("ports")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(service)
    isvc = resources["kserve/inferenceservice.yaml"]
    isvc["spec"]["predictor"]["containers"][0]["resources"]["limits"]["cpu"] = {"cores": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        check_inference_service(isvc)


def test_probes_use_routes_the_server_answers(resources: dict[str, dict[str, Any]], iris_bundle: Path) -> None:
    container = resources["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    paths = {kind: container[kind]["httpGet"]["path"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert paths == {"startupProbe": "/health/live", "livenessProbe": "/health/live", "readinessProbe": "/health/ready"}
    assert all(container[kind]["httpGet"]["port"] == "http" for kind in paths)
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    with make_client([iris_bundle]) as client:
        for path in set(paths.values()):
            assert client.get(path).status_code == 200
    assert resources["service.yaml"]["spec"]["ports"][0]["targetPort"] == "http"


def test_grace_period_covers_the_drain(iris_bundle: Path) -> None:
    for drain in (30.0, 120.5):
        resources = manifests(inspect(iris_bundle), KubernetesOptions(graceful_timeout_s=drain, kserve=True))
        spec = resources["deployment.yaml"]["spec"]["template"]["spec"]
        pre_stop = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
        assert resources["configmap.yaml"]["data"]["BERTH_GRACEFUL_TIMEOUT_S"] == f"{drain:g}"
        assert spec["terminationGracePeriodSeconds"] > pre_stop + drain
        assert resources["kserve/inferenceservice.yaml"]["spec"]["predictor"][
            "terminationGracePeriodSeconds"] == spec["terminationGracePeriodSeconds"]
    assert ServeSettings.model_fields["graceful_timeout_s"].default == KubernetesOptions().graceful_timeout_s


def test_configmap_is_server_settings(monkeypatch: pytest.MonkeyPatch, iris_bundle: Path) -> None:
    resources = manifests(inspect(iris_bundle), KubernetesOptions(
        cpu="2500m", settings={"max_batch_size": "128", "BERTH_LOG_LEVEL": "warning"}))
    data = resources["configmap.yaml"]["data"]
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    settings = ServeSettings()
    assert (settings.host, settings.port, settings.workers, settings.max_batch_size, settings.log_level) == (
        "0.0.0.0", 8080, 2, 128, "warning")
    container = resources["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == [{"configMapRef": {"name": "berth-iris"}}]
    assert container["resources"]["requests"]["cpu"] == "2500m"
    memory = int(container["resources"]["requests"]["memory"].removesuffix("Mi"))
    assert memory >= 2 * 320  # two workers, each with its own copy of the model


def test_the_prediction_log_has_a_writable_home(iris_bundle: Path) -> None:
    """readOnlyRootFilesystem: BERTH_HOME must be a mounted volume (emptyDir, or a claim), writable by the user."""
    for options, volume in ((KubernetesOptions(), {"emptyDir": {"sizeLimit": "1Gi"}}),
                            (KubernetesOptions(home_claim="berth-logs", kserve=True),
                             {"persistentVolumeClaim": {"claimName": "berth-logs"}})):
        resources = manifests(inspect(iris_bundle), options)
        validate(resources["deployment.yaml"])
        home = resources["configmap.yaml"]["data"]["BERTH_HOME"]
        pods = [resources["deployment.yaml"]["spec"]["template"]["spec"]]
        if options.kserve:
            pods.append(resources["kserve/inferenceservice.yaml"]["spec"]["predictor"])
            assert {"name": "BERTH_HOME", "value": home} in pods[1]["containers"][0]["env"]
        for pod in pods:
            container = pod["containers"][0]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert home in mounts
            assert {"name": mounts[home], **volume} in pod["volumes"]
            assert pod["securityContext"]["fsGroup"] == container["securityContext"]["runAsUser"]
    with pytest.raises(UsageError, match="home-claim"):
        manifests(inspect(iris_bundle), KubernetesOptions(home_claim="Not A Name"))
    shared = manifests(inspect(iris_bundle), KubernetesOptions(settings={"monitor_dir": "s3://logs/berth"}))
    assert shared["configmap.yaml"]["data"]["BERTH_MONITOR_DIR"] == "s3://logs/berth"


def test_autoscaler_targets_the_deployment(resources: dict[str, dict[str, Any]]) -> None:
    hpa = resources["hpa.yaml"]["spec"]
    deployment = resources["deployment.yaml"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert hpa["minReplicas"] == deployment["spec"]["replicas"] == 2 and hpa["maxReplicas"] == 10
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert resources["service.yaml"]["spec"]["selector"] == selector
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(("options", "message"), [
    ({"name": "Bad_Name"}, "Kubernetes name"),
    ({"cpu": "lots"}, "CPU quantity"),
    ({"memory": "2 GB"}, "not a Kubernetes quantity"),
    ({"replicas": 5, "max_replicas": 3}, "min"),
    ({"settings": {"colour": "blue"}}, "not a server setting"),
    ({"settings": {"port": "9000"}}, "--port"),
    ({"settings": {"auth_all": "true"}}, "probes would fail"),
    ({"cpu_utilization": 0}, "percentage"),
])
def test_bad_options(iris_bundle: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        manifests(inspect(iris_bundle), KubernetesOptions(**options))


def test_cli_deploy_k8s(tmp_path: Path, iris_bundle: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "k8s"
    args = ["deploy", "k8s", str(iris_bundle), "-o", str(out), "--image", "r.example/iris:2", "--set",
            "max_batch_size=32", "--max-replicas", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "kubectl apply -f" in result.output
    deployment = yaml.safe_load((out / "deployment.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "r.example/iris:2"
    assert yaml.safe_load((out / "configmap.yaml").read_text())["data"]["BERTH_MAX_BATCH_SIZE"] == "32"
    assert not (out / "kserve").exists()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output and "Traceback" not in again.output
    bad = runner.invoke(app, ["deploy", "k8s", str(iris_bundle), "-o", str(out), "--set", "novalue"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output
    as_json = runner.invoke(app, [*args, "--overwrite", "--kserve", "--json"])
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.stdout)
    assert sorted(Path(p).name for p in report["written"]) == sorted(
        p.name for p in out.rglob("*.yaml")) and str(out / "deployment.yaml") in report["written"]
    assert (report["apply"], report["kserve"]) == (f"kubectl apply -f {out}", f"kubectl apply -f {out}/kserve")
