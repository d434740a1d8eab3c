"""Commands for monitoring: berth monitor report/check/feedback/prune, berth ui.

Like ``berth.cli.main``, nothing heavy is imported at module level: each command imports what it uses.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from berth.cli.output import print_json

monitor_app = typer.Typer(name="monitor", no_args_is_help=True, add_completion=False,
                          help="Drift, data quality and accuracy of served models, from their prediction log.")

Name = Annotated[str, typer.Argument(help="The model's name, as served.")]
Since = Annotated[str, typer.Option(help="Window: predictions of the last 15m, 24h, 7d, ...")]
Until = Annotated[str | None, typer.Option(help="End the window this long ago (e.g. 1h); default now.")]
Version = Annotated[str | None, typer.Option(help="Only predictions of this served version.")]
MonitorDir = Annotated[str | None, typer.Option(
    "--monitor-dir", help="Where the prediction log is: a directory or a URL such as s3://bucket/prefix (default "
                          "$BERTH_MONITOR_DIR, else $BERTH_HOME/monitoring).")]
Bundle = Annotated[str | None, typer.Option(
    "--bundle", help="Compare against this bundle's reference instead of the served version's.")]
Rules = Annotated[list[str] | None, typer.Option(
    "--drift-method", metavar="FEATURE=METHOD[:THRESHOLD]",
    help="Override the drift test of a feature: ks, chisquare, wasserstein, psi, jensenshannon (repeatable).")]
Share = Annotated[float | None, typer.Option(help="Share of drifted features that means dataset drift (0.5).")]
SmallSample = Annotated[int | None, typer.Option(
    help="Above this effective sample size n*m/(n+m), drift also needs a KS or total variation distance of "
         "0.03 (1000).")]


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
    app.add_typer(monitor_app)
    app.command("ui")(ui_command)


def _store(monitor_dir: str | None) -> Any:
    from berth.monitoring.store import Store

    return Store(monitor_dir)


def _config(rules: list[str] | None, share: float | None, small_sample: int | None) -> Any:
    from berth.errors import UsageError
    from berth.monitoring.drift import DriftConfig, FeatureRule

    if share is not None and not 0 <= share <= 1:
        raise UsageError("--dataset-share must be between 0 and 1")
    overrides = dict(FeatureRule.parse(rule) for rule in rules or [])
    options: dict[str, Any] = {"features": overrides}
    if share is not None:
        options["dataset_share"] = share
    if small_sample is not None:
        options["small_sample"] = small_sample
    return DriftConfig(**options)


def _progress() -> Any:
    """On a terminal, a line that shows how far a long report's pass over the log is; elsewhere nothing."""
    import time

    if not sys.stderr.isatty():
        return None
    shown = {"at": 0.0}

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - shown["at"] < 0.2 and done < total:
            return
        shown["at"] = now
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r  reading the log: {done:,} of {total:,} rows ({done / max(total, 1):.0%}){end}")
        sys.stderr.flush()

    return show


def _window(since: str, until: str | None) -> tuple[Any, Any]:
    import datetime as dt

    from berth.monitoring.store import parse_duration

    now = dt.datetime.now(dt.UTC)
    return now - parse_duration(since), (now - parse_duration(until)) if until else None


@monitor_app.command("report")
def report_command(
    name: Name,
    since: Since = "24h",
    until: Until = None,
    version: Version = None,
    format: Annotated[str, typer.Option("--format", help="html or json.")] = "html",
    output: Annotated[str | None, typer.Option("--output", "-o", help="File to write (default: stdout for "
                                                                      "json, NAME-report.html for html).")] = None,
    bundle: Bundle = None,
    drift_method: Rules = None,
    dataset_share: Share = None,
    small_sample: SmallSample = None,
    monitor_dir: MonitorDir = None,
) -> None:
    """Drift, data quality, performance and traffic of a model's predictions: an HTML page or JSON."""
    import json

    from berth.errors import UsageError
    from berth.monitoring.report import build_report, render_html

    if format not in ("html", "json"):
        raise UsageError(f"--format must be html or json, not {format!r}")
    start, end = _window(since, until)
    report = build_report(name, since=start, until=end, version=version, store=_store(monitor_dir),
                          config=_config(drift_method, dataset_share, small_sample), bundle=bundle,
                          progress=_progress())
    if format == "json":
        from berth.monitoring.report import strip_plots

        text = json.dumps(strip_plots(report), indent=2) + "\n"
        if output is None:
            sys.stdout.write(text)
            return
        Path(output).write_text(text)
    else:
        output = output or f"{name}-report.html"
        Path(output).write_text(render_html(report), encoding="utf-8")
    typer.echo(f"wrote the {format} report of {name} ({report['rows']:,} predictions) to {output}", err=True)
    for line in report["summary"]:
        typer.echo(f"  {line}", err=True)


EXIT_OK, EXIT_FAILED, EXIT_NO_DATA = 0, 1, 3


@monitor_app.command("check")
def check_command(
    name: Name,
    since: Since = "24h",
    version: Version = None,
    metric: Annotated[str | None, typer.Option(
        help="Performance metric to watch (default accuracy for classifiers, r2 for regressors).")] = None,
    max_drop: Annotated[float, typer.Option(
        help="Largest allowed fall of the metric below the bundle's recorded value.")] = 0.05,
    minimum: Annotated[float | None, typer.Option(
        "--min", help="Fail when the metric is below this value (instead of or besides --max-drop).")] = None,
    min_labels: Annotated[int, typer.Option(help="Labelled predictions needed to judge performance.")] = 30,
    bundle: Bundle = None,
    drift_method: Rules = None,
    dataset_share: Share = None,
    small_sample: SmallSample = None,
    window: Annotated[str | None, typer.Option(
        "--window", help="Also judge the latest bucket of this length alone (e.g. 1h): drift in the last hour "
                         "fails the check even when the whole --since window looks fine.")] = None,
    monitor_dir: MonitorDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON on stdout (for scripts); "
                                                         "the exit code is the same.")] = False,
    on_fail: Annotated[str | None, typer.Option(
        "--on-fail", metavar="COMMAND", help="Run COMMAND when the check fails (e.g. retraining); its environment "
        "names the model, version, what failed and the window's inputs and labels as Parquet (docs/rollouts.md).")
    ] = None,
    on_fail_timeout: Annotated[float, typer.Option(help="Longest run of the --on-fail command, seconds.")] = 3600,
) -> None:
    """Judge the window: exit 0 when fine, 1 on dataset drift or a performance drop past its threshold, 3 when
    there is nothing to judge (no predictions in the window, unknown model, unreadable log); for cron and CI."""
    from berth.errors import StorageError
    from berth.monitoring.report import build_report
    from berth.monitoring.store import parse_duration
    from berth.monitoring.thresholds import check

    if on_fail is not None:
        from berth.monitoring.on_fail import split_command

        split_command(on_fail)  # a malformed command is refused before any work
    start, _ = _window(since, None)
    bucket = parse_duration(window) if window else None
    result: dict[str, Any] = {"model": name, "since": since, "window_start": start.isoformat(timespec="seconds"),
                              "version": version}
    store = _store(monitor_dir)
    try:
        report = build_report(name, since=start, version=version, store=store,
                              config=_config(drift_method, dataset_share, small_sample), bundle=bundle,
                              bucket=bucket)
    except StorageError as exc:
        result.update(ok=False, status="no_data", exit_code=EXIT_NO_DATA, problems=[], notes=[exc.message])
        _verdict(result, as_json, f"NO DATA {exc.message}")
        raise typer.Exit(EXIT_NO_DATA) from None
    result["rows"] = report["rows"]
    if report["rows"] == 0:
        result.update(ok=False, status="no_data", exit_code=EXIT_NO_DATA, problems=[], notes=report["summary"])
        _verdict(result, as_json, f"NO DATA {name}: no predictions logged since {result['window_start']}")
        raise typer.Exit(EXIT_NO_DATA)
    problems, notes = check(report, metric=metric, max_drop=max_drop, minimum=minimum, min_labels=min_labels,
                            latest_bucket=bucket is not None)
    timeline = report.get("timeline") or {}
    drift = report.get("drift") or {}
    result.update(ok=not problems, status="failed" if problems else "ok",
                  exit_code=EXIT_FAILED if problems else EXIT_OK,
                  problems=problems, notes=notes, dataset_drift=bool(drift.get("drifted")),
                  drift_share=drift.get("share"), drifted_features=drift.get("drifted_features", []),
                  prediction_drift=bool((report.get("prediction_drift") or {}).get("drifted")),
                  performance=(report.get("performance") or {}).get("overall"),
                  labelled=(report.get("performance") or {}).get("labelled", 0),
                  latest_bucket=timeline.get("latest"), first_drift=timeline.get("first_drift"),
                  drift_since=timeline.get("drift_since"))
    if problems and on_fail is not None:
        from berth.monitoring.on_fail import run_on_fail

        status = run_on_fail(on_fail, store=store, model=name, since=start, window=since, version=version,
                             problems=problems, verdict=result, timeout_s=on_fail_timeout)
        result["on_fail"] = {"command": on_fail, "exit_status": status}
    if as_json:
        print_json(result)
    else:
        for note in notes:
            typer.echo(f"  {note}")
        for problem in problems:
            typer.echo(f"FAIL {problem}")
        if "on_fail" in result:
            typer.echo(f"ran --on-fail {on_fail!r}: exit status {result['on_fail']['exit_status']}")
        if not problems:
            typer.echo(f"OK {name}: no dataset drift and no performance drop in {report['rows']:,} predictions")
    if problems:
        raise typer.Exit(EXIT_FAILED)


def _verdict(result: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        print_json(result)
    else:
        typer.echo(line)


@monitor_app.command("feedback")
def feedback_command(
    name: Name,
    labels: Annotated[str, typer.Argument(help="CSV, Parquet or JSON Lines with columns request_id, label "
                                               "(and optionally row).")],
    monitor_dir: MonitorDir = None,
) -> None:
    """Join true labels to logged predictions by request id."""
    from berth.monitoring.feedback import read_labels, record_feedback
    from berth.monitoring.store import check_name

    stored = record_feedback(_store(monitor_dir), check_name(name), read_labels(labels))
    typer.echo(f"stored {stored:,} labels for {name}")


@monitor_app.command("prune")
def prune_command(
    name: Name,
    older_than: Annotated[str, typer.Option(help="Delete days of log and labels older than this: 30d, 12w.")],
    compact: Annotated[bool, typer.Option(
        "--compact/--no-compact", help="Also merge each past day's files into one (faster reports).")] = True,
    monitor_dir: MonitorDir = None,
) -> None:
    """Delete old prediction log and labels (whole days), and compact the days kept."""
    from berth.monitoring.store import parse_duration

    store = _store(monitor_dir)
    removed = store.prune(name, parse_duration(older_than))
    typer.echo(f"removed {len(removed)} day(s) of {name}" + (f": {removed[0]} .. {removed[-1]}" if removed else ""))
    if compact:
        merged = store.compact(name)
        typer.echo(f"compacted {merged} file(s)")


@monitor_app.command("compact")
def compact_command(
    name: Name,
    monitor_dir: MonitorDir = None,
) -> None:
    """Merge each finished day's log and label files into one (safe while servers write and reports read)."""
    merged = _store(monitor_dir).compact(name)
    typer.echo(f"compacted {merged} file(s) of {name}")


def ui_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8001,
    monitor_dir: MonitorDir = None,
) -> None:
    """Serve the monitoring dashboard alone, over the monitoring directory (no model needed)."""
    import uvicorn

    from berth.monitoring.dashboard import create_app
    from berth.serving.server import bind_socket

    store = _store(monitor_dir)
    sock = bind_socket(host, port, reuse_port=False)
    typer.echo(f"berth ui: http://{host}:{sock.getsockname()[1]}/dashboard over {store.root}", err=True)
    uvicorn.Server(uvicorn.Config(create_app(store), log_level="warning")).run(sockets=[sock])


def resolve_version(name: str, given: str, registry_url: str | None, logged: dict[str, Any]) -> str:
    """A version as logged: a number or digest as is; an alias of the registry (production) as its number."""
    from berth.errors import BerthError, UsageError

    if given.isdigit() or given in logged:
        return given
    try:
        from berth.registry.store import Registry

        with Registry(registry_url) as registry:
            aliases = registry.aliases(name)
    except BerthError as exc:
        raise UsageError(f"{given!r} is neither a logged version of {name} nor an alias in the registry "
                         f"({exc.message})") from None
    if given not in aliases:
        raise UsageError(f"{name} has no alias {given!r} (aliases: "
                         f"{', '.join(f'{a} -> {v}' for a, v in aliases.items()) or 'none'}) and no logged "
                         f"version {given!r}")
    return str(aliases[given])


@monitor_app.command("compare")
def compare_command(
    name: Name,
    baseline: Annotated[str, typer.Option(help="The baseline: a version, or an alias of the registry.")]
    = "production",
    candidate: Annotated[str, typer.Option(help="The candidate: a version, or an alias of the registry.")]
    = "candidate",
    since: Since = "24h",
    until: Until = None,
    registry: Annotated[str | None, typer.Option(
        "--registry", metavar="URL", help="The registry aliases resolve in (default $BERTH_REGISTRY_URL).")] = None,
    html: Annotated[str | None, typer.Option("--html", metavar="FILE", help="Also write the comparison as an "
                                                                             "HTML page.")] = None,
    monitor_dir: MonitorDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON on stdout.")] = False,
) -> None:
    """Champion / challenger: the candidate against the baseline on the same window of live traffic."""
    import json

    from berth.monitoring.compare import compare, render_section, summary_lines

    store = _store(monitor_dir)
    logged = store.versions(name)
    start, end = _window(since, until)
    result = compare(name, resolve_version(name, baseline, registry, logged),
                     resolve_version(name, candidate, registry, logged), since=start, until=end, store=store)
    if html:
        from berth.monitoring.report import STYLE

        Path(html).write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>berth: "
                              f"{name} comparison</title><style>{STYLE}</style></head><body>"
                              f"{render_section(result)}</body></html>", encoding="utf-8")
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, default=str) + "\n")
        return
    for line in summary_lines(result):
        typer.echo(line)
