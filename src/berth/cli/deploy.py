"""Commands for shipping: berth build, berth deploy k8s.

Like ``berth.cli.main``, nothing heavy is imported at module level: each command imports what it uses.
"""

from __future__ import annotations

from typing import Annotated

import typer

from berth.cli.output import print_json

Uri = Annotated[str, typer.Argument(help="A bundle directory, a packed .berth file, a URL (s3://...) or a "
                                              "registered model (models:/NAME/VERSION, models:/NAME@ALIAS).")]
Output = Annotated[str, typer.Option("--output", "-o", help="The directory to write.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace what berth wrote there before.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print what was written as JSON on stdout (for scripts).")]


def build_command(
    uri: Uri,
    output: Output,
    target: Annotated[str | None, typer.Option(
        help="Platform defaults: generic (default), sagemaker, vertex, azure, kserve.")] = None,
    base_image: Annotated[str | None, typer.Option(
        help="Base image (default python:X.Y-slim-bookworm for the bundle's Python X.Y).")] = None,
    extra_requirements: Annotated[list[str] | None, typer.Option(
        "--extra-requirements", help="More requirements: 'pkg==1.0,other>=2' or @requirements-file (repeatable).",
    )] = None,
    port: Annotated[int | None, typer.Option(help="The server's port in the container (default 8080).")] = None,
    berth_wheel: Annotated[str | None, typer.Option(
        "--berth-wheel", help="Install berth from this wheel (default: built from berth's source tree, or the "
                              "package index when berth was installed from one).")] = None,
    lock: Annotated[bool, typer.Option(
        "--lock/--no-lock", help="Pin every package of the image, with hashes, in requirements.lock (default; "
                                 "needs the package index).")] = True,
    platform: Annotated[str, typer.Option(
        help="The image's platform the lock is resolved for: linux/amd64 (default) or linux/arm64.")] = "linux/amd64",
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Write a Docker build context: the bundle, requirements.txt, a hashed requirements.lock and a Dockerfile."""
    from berth.deploy.docker import build_context

    context = build_context(uri, output, target=target, base_image=base_image,
                            extra_requirements=extra_requirements, port=port, berth_wheel=berth_wheel,
                            overwrite=overwrite, locked=lock, platform=platform)
    manifest = context.manifest
    if as_json:
        print_json({"directory": str(context.directory), "name": manifest.name, "flavor": manifest.flavor,
                    "format": manifest.format, "content_digest": manifest.content_digest,
                    "target": context.target.name, "port": context.port, "base_image": context.base_image,
                    "image": context.image, "berth": context.berth.origin, "next_steps": context.next_steps()})
        return
    typer.echo(f"wrote build context {context.directory} for {manifest.name} ({manifest.flavor}/{manifest.format}) "
               f"on {context.base_image}, port {context.port}, target {context.target.name}; berth from "
               f"{context.berth.origin}")
    typer.echo("next:")
    for step in context.next_steps():
        typer.echo(f"  {step}")


def k8s_command(
    uri: Uri,
    output: Output,
    image: Annotated[str | None, typer.Option(
        help="The image berth build made, as pushed (default berth-NAME:DIGEST12).")] = None,
    name: Annotated[str | None, typer.Option(help="Name of the resources (default berth-MODEL).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Namespace (default: kubectl's current one).")] = None,
    replicas: Annotated[int, typer.Option(help="Replicas, and the autoscaler's minimum.")] = 2,
    max_replicas: Annotated[int, typer.Option(help="The autoscaler's maximum.")] = 10,
    cpu_utilization: Annotated[int, typer.Option(help="Average CPU utilisation the autoscaler aims at (%).")] = 70,
    cpu: Annotated[str, typer.Option(help="CPU request per pod; one worker process per whole core.")] = "1",
    memory: Annotated[str | None, typer.Option(
        help="Memory request per pod (default from the bundle's size and the workers).")] = None,
    cpu_limit: Annotated[str | None, typer.Option(help="CPU limit (default: the request).")] = None,
    memory_limit: Annotated[str | None, typer.Option(help="Memory limit (default: the request).")] = None,
    port: Annotated[int, typer.Option(help="The container's port (berth build's, default 8080).")] = 8080,
    graceful_timeout_s: Annotated[float, typer.Option(
        help="How long berth drains in-flight requests on SIGTERM; the pod's grace period covers it.")] = 30.0,
    setting: Annotated[list[str] | None, typer.Option(
        "--set", metavar="NAME=VALUE", help="Another server setting for the ConfigMap, e.g. max_batch_size=128.",
    )] = None,
    kserve: Annotated[bool, typer.Option("--kserve", help="Also write kserve/inferenceservice.yaml.")] = False,
    home_claim: Annotated[str | None, typer.Option(
        help="A PersistentVolumeClaim for BERTH_HOME (the prediction log) instead of an emptyDir; to share one log "
             "between replicas use --set monitor_dir=s3://bucket/prefix.")] = None,
    home_size: Annotated[str, typer.Option(help="Size limit of the BERTH_HOME emptyDir.")] = "1Gi",
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Write Kubernetes manifests: ConfigMap, Deployment, Service, HorizontalPodAutoscaler (and KServe)."""
    from berth.deploy.kubernetes import KubernetesOptions, write
    from berth.errors import UsageError
    from berth.model import inspect

    settings = {}
    for item in setting or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {item!r}: expected NAME=VALUE")
        settings[key.strip()] = value.strip()
    options = KubernetesOptions(image=image, name=name, namespace=namespace, replicas=replicas,
                                max_replicas=max_replicas, cpu_utilization=cpu_utilization, cpu=cpu, memory=memory,
                                cpu_limit=cpu_limit, memory_limit=memory_limit, port=port,
                                graceful_timeout_s=graceful_timeout_s, settings=settings, kserve=kserve,
                                home_claim=home_claim, home_size=home_size)
    written = write(inspect(uri), output, options, overwrite=overwrite)
    if as_json:
        print_json({"written": [str(path) for path in written], "apply": f"kubectl apply -f {output}",
                    "kserve": f"kubectl apply -f {output}/kserve" if kserve else None})
        return
    for path in written:
        typer.echo(f"wrote {path}")
    typer.echo(f"apply: kubectl apply -f {output}" + (f"  (KServe instead: kubectl apply -f {output}/kserve)"
                                                       if kserve else ""))


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
    app.command("build")(build_command)
    deploy = typer.Typer(name="deploy", help="Write deployment manifests for a bundle.", no_args_is_help=True)
    deploy.command("k8s")(k8s_command)
    app.add_typer(deploy, name="deploy")
