"""The ``berth`` command line: one small function per command, each delegating to the library.

Nothing heavy is imported at module level, so ``berth --help`` stays fast: each command imports what it uses.
A :class:`~berth.errors.BerthError` prints as ``error: <message>`` plus its details, with no traceback, and
exits with the error's exit code (1 for a failure, 2 for a usage error); typer's own usage errors exit with 2.
"""

from __future__ import annotations

import errno
import os
import sys
import warnings
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from berth.cli.options import Trust, TrustedTypes
from berth.cli.output import print_json
from berth.errors import BerthError, BerthWarning


class BerthGroup(TyperGroup):
    """Turns berth's errors into a message and an exit code, for ``main()`` and test runners alike."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        show_flags_as_flags(self)

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        for param in params:  # typer appends --install-completion / --show-completion after __init__
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BerthError as exc:
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise
            report(str(exc))
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=BerthGroup,
    name="berth",
    help="Save, inspect, import, pack, score and serve trained models as verified bundles.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

Uri = Annotated[str, typer.Argument(help="A bundle directory, a packed .berth file, a URL (s3://...) or a "
                                              "registered model (models:/NAME/VERSION, models:/NAME@ALIAS).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace what is already at the output.")]
AllowMismatch = Annotated[bool, typer.Option(
    "--allow-version-mismatch", help="Load even if Python or a library differs by a major version.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout (for scripts).")]
NoCompile = Annotated[bool, typer.Option(
    "--no-compile", help="Build no compiled twin (by default an ONNX twin is added when proven equivalent).")]


def show_flags_as_flags(command: Any) -> None:
    """Show no value type beside a boolean flag (typer would print ``<bool>``): ``--trust`` takes no value.

    Applied to every command and group under ``command``, and to the ``--help`` option each one makes.
    """
    for param in command.params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    make_help_option = command.get_help_option

    def get_help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None and option.metavar is None:
            option.metavar = ""
        return option

    command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        show_flags_as_flags(sub)


def version_line() -> str:
    import platform

    from berth import __version__

    return f"berth {__version__} (Python {platform.python_version()})"


def show_version(value: bool) -> None:
    if value:
        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=show_version, help="Print the versions of berth and Python, and exit.",
    )] = False,
) -> None:
    pass


@app.command("inspect")
def inspect_command(
    uri: Uri,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Show what a bundle holds: flavor, environment, signature, files, metrics and lineage."""
    from berth.model import inspect

    manifest = inspect(uri)
    if as_json:
        sys.stdout.write(manifest.to_json())
        return
    from berth.cli.render import render_manifest, stdout_console

    stdout_console().print(render_manifest(manifest))


@app.command("verify")
def verify_command(uri: Uri, as_json: AsJson = False) -> None:
    """Check every file of a bundle against the sha256 in its manifest."""
    from berth.model import verify

    manifest = verify(uri)
    if as_json:
        print_json({"uri": str(uri), "ok": True, "name": manifest.name, "files": len(manifest.files),
                    "content_digest": manifest.content_digest})
        return
    typer.echo(f"OK {uri}: {files(len(manifest.files))} match, {manifest.content_digest}")


@app.command("import")
def import_command(
    file: Annotated[str, typer.Argument(help=(
        "A model file (.joblib, .pkl, .pickle, .sav, .onnx; XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm) or "
        "an MLflow model directory (with its MLmodel file), local or s3://."))],
    output: Annotated[str, typer.Option("--output", "-o", help="The bundle directory to write.")],
    trust: Annotated[bool, typer.Option("--trust", help="Read a pickle or joblib file (or an MLflow sklearn or "
                                                        "python_function model), which runs code stored in it; "
                                                        "only for files you trust.")] = False,
    sample: Annotated[str | None, typer.Option(
        "--sample", help="A CSV, Parquet or JSON Lines file of input rows, for the signature.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="The model's name (default: the output's).")] = None,
    format: Annotated[str | None, typer.Option(
        "--format", help="The payload format (default: the flavor's safe one: skops for scikit-learn).",
    )] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="The training data (CSV, Parquet or JSON Lines): its statistics become the baseline "
                            "of drift monitoring (extra columns such as the label are ignored).")] = None,
    overwrite: Overwrite = False,
    no_examples: Annotated[bool, typer.Option(
        "--no-examples", help="Keep no sample rows in the manifest (for sensitive data; /docs shows none).")] = False,
    no_compile: NoCompile = False,
    as_json: AsJson = False,
) -> None:
    """Turn a model file (joblib, pickle, ONNX, XGBoost, LightGBM, CatBoost) or an MLflow model into a bundle."""
    from berth.importer import import_model

    manifest = import_model(file, output, trust=trust, sample=sample, name=name, format=format,
                            overwrite=overwrite, examples=not no_examples, reference=reference,
                            compile=not no_compile)
    if as_json:
        print_json({"source": file, **bundle_summary(output, manifest)})
        return
    typer.echo(f"imported {file} as bundle {output!s}: {manifest.flavor} ({manifest.format}), "
               f"{files(len(manifest.files))}, {manifest.content_digest}")
    if manifest.compiled is not None:
        from berth.compile import describe

        typer.echo(f"compiled twin: {describe(manifest)}")
    if manifest.reference:
        typer.echo(f"reference statistics of {manifest.reference['rows']:,} rows attached (the drift baseline)")


@app.command("predict")
def predict_command(
    uri: Uri,
    input: Annotated[str, typer.Option("--input", "-i", help="Rows to score: .csv, .parquet or .jsonl.")],
    output: Annotated[str, typer.Option("--output", "-o", help="Where to write: .csv, .parquet or .jsonl.")],
    id_column: Annotated[str | None, typer.Option(
        "--id-column", help="An input column to write beside each prediction (default: row number).")] = None,
    probabilities: Annotated[bool, typer.Option(
        "--probabilities", help="Also write the probability of each class, as proba_<class>.")] = False,
    chunk_size: Annotated[int, typer.Option(
        "--chunk-size", min=1, help="Rows read and scored at once.")] = 10_000,
    threads: Annotated[int | None, typer.Option(
        "--threads", min=1, help="Chunks scored at once, each on a thread (default: one per core for models "
                                 "whose runtime allows it, scikit-learn, ONNX, boosting libraries; else 1). "
                                 "Output order is input order either way.")] = None,
    trust: Trust = False,
    trusted_type: TrustedTypes = None,
    allow_version_mismatch: AllowMismatch = False,
    engine: Annotated[str | None, typer.Option(
        help="Score a Parquet dataset (a file or a directory) in parallel with local, ray or dask; the output "
             "is then a directory of Parquet parts (see docs/operations.md).")] = None,
    address: Annotated[str | None, typer.Option(
        help="An existing Ray (ray://HOST:10001) or Dask (tcp://HOST:8786) cluster for --engine.")] = None,
    as_json: AsJson = False,
) -> None:
    """Score a file of rows, chunk by chunk, and write the predictions to another file."""
    from berth.batch import check_paths, predict_file
    from berth.cli.render import progress_reporter
    from berth.model import load

    if engine is not None or address is not None or os.path.isdir(input):
        from berth.deploy.distributed_batch import ModelSpec, ScoreOptions, check_request, predict_dataset

        check_request(engine or "local", address, input, output)  # before the slow part: loading the model
        spec = ModelSpec(uri, trust, tuple(trusted_type or ()), allow_version_mismatch)
        with progress_reporter(enabled=sys.stderr.isatty()) as progress:
            options = ScoreOptions(id_column, probabilities, chunk_size, threads)
            result = predict_dataset(spec, input, output, engine=engine or "local", address=address,
                                     options=options, progress=progress, model=spec.load())
        if as_json:
            print_json({"rows": result.rows, "output": str(result.output), "engine": engine or "local",
                        "format": "parquet-parts"})
            return
        typer.echo(f"wrote {result.rows} predictions to {result.output}/ (Parquet parts)", err=True)
        return
    check_paths(input, output)  # before the slow part: loading the model
    model = load(uri, trust=trust, trusted_types=trusted_type or [],
                 allow_version_mismatch=allow_version_mismatch)
    with progress_reporter(enabled=sys.stderr.isatty()) as progress:
        result = predict_file(model, input, output, id_column=id_column, probabilities=probabilities,
                              chunk_size=chunk_size, progress=progress, threads=threads)
    if as_json:
        print_json({"rows": result.rows, "output": str(result.output)})
        return
    typer.echo(f"wrote {result.rows} predictions to {result.output}", err=True)


@app.command("compile")
def compile_command(
    uri: Uri,
    output: Annotated[str, typer.Option("--output", "-o", help="The new bundle directory to write.")],
    trust: Trust = False,
    trusted_type: TrustedTypes = None,
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Write a new bundle: this one plus a compiled twin (ONNX), if the twin is proven equivalent."""
    from berth.compile import describe
    from berth.compile.rebuild import compile_bundle

    manifest = compile_bundle(uri, output, trust=trust, trusted_types=trusted_type or [], overwrite=overwrite)
    if as_json:
        print_json({"source": uri, **bundle_summary(output, manifest), "compiled": manifest.compiled})
        return
    typer.echo(f"compiled {uri} into bundle {output}: {describe(manifest)}, {manifest.content_digest}")


@app.command("pack")
def pack_command(
    bundle: Annotated[str, typer.Argument(help="The bundle directory (or URL) to pack.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The archive to write, NAME.berth.")],
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Pack a verified bundle into one .berth file for transport."""
    from berth.packing import pack

    manifest = pack(bundle, output, overwrite=overwrite)
    if as_json:
        print_json({"bundle": bundle, **bundle_summary(output, manifest)})
        return
    typer.echo(f"packed {manifest.name} ({files(len(manifest.files))}) into {output}")


@app.command("unpack")
def unpack_command(
    archive: Annotated[str, typer.Argument(help="The .berth file (or URL) to unpack.")],
    output: Annotated[str, typer.Option("--output", "-o", help="The bundle directory to write.")],
    overwrite: Overwrite = False,
    as_json: AsJson = False,
) -> None:
    """Unpack a .berth file into a bundle directory, verifying every file."""
    from berth.packing import unpack

    manifest = unpack(archive, output, overwrite=overwrite)
    if as_json:
        print_json({"archive": archive, **bundle_summary(output, manifest)})
        return
    typer.echo(f"unpacked {manifest.name} ({files(len(manifest.files))}) into {output}")


@app.command("serve")
def serve_command(
    uris: Annotated[list[str], typer.Argument(
        help="Bundles to serve: directories, .berth files, URLs, registered models (models:/NAME/VERSION, or "
             "models:/NAME@ALIAS to follow the alias live), or plain .joblib/.pkl files (with --trust). "
             "NAME=URI serves it as NAME (default: the name in its manifest).")],
    host: Annotated[str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default cores, at most 4).")] = None,
    trust: Trust = False,
    max_batch_size: Annotated[int | None, typer.Option(help="Most rows per batched predict (default 64).")] = None,
    max_batch_delay_ms: Annotated[float | None, typer.Option(
        help="Longest wait for more requests while others arrive (default 2).")] = None,
    no_batching: Annotated[bool, typer.Option("--no-batching", help="Predict each request on its own.")] = False,
    timeout_s: Annotated[float | None, typer.Option(help="Answer 504 after this many seconds (default 30).")] = None,
    max_body_mb: Annotated[float | None, typer.Option(help="Largest request body (default 10).")] = None,
    grpc_port: Annotated[int | None, typer.Option(
        help="Also serve the Open Inference Protocol over gRPC on this port (default off; needs berth[grpc]).")] = None,
    api_key: Annotated[list[str] | None, typer.Option(
        "--api-key", help="Require Authorization: Bearer KEY on prediction routes (repeatable).")] = None,
    protect_docs: Annotated[bool, typer.Option(
        "--protect-docs", help="Also require the API key for /docs and /openapi.json (example rows).")] = False,
    protect_metrics: Annotated[bool, typer.Option(
        "--protect-metrics", help="Also require the API key for /metrics (it names the models).")] = False,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL", help="The registry models:/ URIs resolve in: sqlite:///PATH or "
        "postgresql://... (default $BERTH_REGISTRY_URL, else $BERTH_HOME/registry.db).")] = None,
    poll_interval_s: Annotated[float | None, typer.Option(
        help="For models:/NAME@ALIAS: how often to check where the alias points (default 5).")] = None,
    log_level: Annotated[str | None, typer.Option(help="critical, error, warning, info, debug.")] = None,
    compiled: Annotated[bool | None, typer.Option(
        "--compiled/--no-compiled", help="Predict with a bundle's compiled twin when it has one (default on); "
        "--no-compiled serves the original model.")] = None,
    backend: Annotated[str, typer.Option(
        help="local: berth's own worker processes; ray: replicas of a Ray Serve deployment.")] = "local",
    replicas: Annotated[int | None, typer.Option(help="Ray Serve replicas (--backend ray; default 1).")] = None,
    autoscale: Annotated[str | None, typer.Option(
        metavar="MIN:MAX", help="Ray Serve replicas scaled with load (--backend ray).")] = None,
    address: Annotated[str | None, typer.Option(
        help="A Ray cluster: ray://HOST:10001 or auto (--backend ray; default: a local Ray instance).")] = None,
    log_predictions: Annotated[bool | None, typer.Option(
        "--log-predictions/--no-log-predictions", help="Record answered predictions for monitoring (default on).",
    )] = None,
    log_sample_rate: Annotated[float | None, typer.Option(
        help="Share of answered requests recorded, 0 to 1 (default 1).")] = None,
    monitor_dir: Annotated[str | None, typer.Option(
        help="Where the prediction log goes: a directory or a URL shared by every server, e.g. "
             "s3://bucket/prefix (default $BERTH_MONITOR_DIR, else $BERTH_HOME/monitoring).")] = None,
    canary: Annotated[str | None, typer.Option(
        metavar="URI=PERCENT", help="A candidate answering PERCENT % of the requests (sticky per "
        "x-berth-route-key), e.g. models:/iris@candidate=10; see docs/rollouts.md.")] = None,
    shadow: Annotated[str | None, typer.Option(
        metavar="URI[=FRACTION]", help="A candidate also sent every request (or FRACTION of them) after the "
        "answer; its outputs are logged as shadow rows, never returned.")] = None,
) -> None:
    """Serve models over HTTP: /predict, MLflow /invocations, Open Inference Protocol /v2, /metrics, /docs.

    Every option also reads BERTH_<NAME> from the environment (see docs/serving.md).
    """
    from berth.serving.launch import RayRequest, launch

    given = {"host": host, "port": port, "workers": workers, "max_batch_size": max_batch_size,
             "max_batch_delay_ms": max_batch_delay_ms, "timeout_s": timeout_s, "max_body_mb": max_body_mb,
             "grpc_port": grpc_port,
             "api_keys": api_key or None, "log_level": log_level, "trust": trust or None,
             "protect_docs": protect_docs or None, "protect_metrics": protect_metrics or None,
             "poll_interval_s": poll_interval_s, "registry_url": registry,
             "batching": False if no_batching else None, "log_predictions": log_predictions,
             "log_sample_rate": log_sample_rate, "monitor_dir": monitor_dir, "canary": canary, "shadow": shadow,
             "compiled": compiled}
    launch(uris, given, ray=RayRequest(backend, replicas, autoscale, address))


@app.command("version")
def version_command() -> None:
    """Print the versions of berth and Python (as berth --version does)."""
    typer.echo(version_line())


def install_command_groups() -> None:
    """Add the commands that live in their own modules (registry, monitoring, deployment)."""
    from berth.cli import deploy, monitor, registry, rollout

    for module in (registry, rollout, monitor, deploy):
        module.install(app)


def report_error(exc: BerthError) -> None:
    report(exc.message, [describe(detail) for detail in exc.details])


def describe(detail: dict[str, Any]) -> str:
    """One detail of an error: ``row 7 / petal width: expected a number, got string 'abc'``."""
    where = " / ".join(f"row {p}" if isinstance(p, int) else str(p) for p in detail.get("loc", []))
    return f"{where}: {detail.get('msg', '')}" if where else str(detail.get("msg", ""))


def bundle_summary(output: str, manifest: Any) -> dict[str, Any]:
    """What ``--json`` of import, pack and unpack reports about the bundle written."""
    return {"output": str(output), "name": manifest.name, "flavor": manifest.flavor, "format": manifest.format,
            "files": len(manifest.files), "content_digest": manifest.content_digest}


def files(count: int) -> str:
    return f"{count} file" if count == 1 else f"{count} files"


def report(message: str, details: list[str] | None = None, *, level: str = "error") -> None:
    """Print ``error: message`` (red on a terminal) and each detail indented, to stderr."""
    from rich.console import Console
    from rich.text import Text

    console = Console(stderr=True, soft_wrap=True, highlight=False)
    style = "bold red" if level == "error" else "bold yellow"
    console.print(Text.assemble((f"{level}: ", style), (message, style.removeprefix("bold "))))
    for detail in details or []:
        console.print(Text(f"  {detail}"))


def main(argv: list[str] | None = None) -> None:
    """The console script: run the app; exit 0, 1 on failure, 2 on a usage error, 130 when interrupted."""
    command = typer.main.get_command(app)
    with warnings.catch_warnings():
        show_other = warnings.showwarning

        def show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, BerthWarning):
                report(str(message), level="warning")
            else:
                show_other(message, category, *args, **kwargs)

        warnings.showwarning = show_warning
        try:
            command.main(args=argv, prog_name="berth")
        except BerthError as exc:  # raised outside a command; commands report their own
            report_error(exc)
            sys.exit(exc.exit_code)
        except OSError as exc:
            report(str(exc))
            sys.exit(1)
        except KeyboardInterrupt:
            sys.exit(130)


install_command_groups()
