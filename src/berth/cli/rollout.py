"""Commands for rollouts: berth rollout set/show/clear, and berth promote (the promotion gate).

A rollout is registry state (see docs/rollouts.md): servers following ``models:/NAME@ALIAS`` apply it on their
next poll. Like ``berth.cli.main``, nothing heavy is imported at module level.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from berth.cli.registry import AsJson, Name, RegistryUrl, open_registry, say

rollout_app = typer.Typer(name="rollout", no_args_is_help=True, add_completion=False,
                          help="Canary and shadow candidates beside an alias, followed live by servers.")
Alias = Annotated[str, typer.Option("--alias", help="The alias whose servers take the candidate.")]


EXIT_REFUSED = 3  # a requirement does not hold
EXIT_INSUFFICIENT = 4  # too few labelled rows, or a required metric not measured


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
    app.add_typer(rollout_app)
    app.command("promote")(promote_command)


def emit(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


@rollout_app.command("set")
def set_command(
    name: Name,
    candidate: Annotated[int, typer.Option("--candidate", help="The candidate version number.")],
    canary: Annotated[float | None, typer.Option(
        "--canary", metavar="PERCENT", help="Share of the requests the candidate answers, 0 to 100.")] = None,
    shadow: Annotated[bool, typer.Option(
        "--shadow", help="Also send the candidate a copy of the requests the baseline answers.")] = False,
    share: Annotated[float | None, typer.Option(
        "--share", help="With --shadow: the fraction of requests copied to the candidate, 0 to 1 (default 1).")
    ] = None,
    alias: Alias = "production",
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Put a candidate version beside an alias, as a canary (--canary 10) and/or a shadow (--shadow)."""
    from berth.errors import UsageError

    if canary is None and not shadow:
        raise UsageError("say what the candidate does: --canary PERCENT and/or --shadow [--share FRACTION]")
    if share is not None and not shadow:
        raise UsageError("--share is the shadow's share: give it with --shadow")
    with open_registry(registry) as store:
        rollout = store.set_rollout(name, candidate, alias=alias, canary=canary or 0.0,
                                    shadow=(1.0 if share is None else share) if shadow else 0.0)
        baseline = store.aliases(name).get(alias)
    if as_json:
        emit({**rollout.to_dict(), "baseline": baseline})
        return
    say(f"{name}@{alias} (version {baseline}) + {rollout.describe()}; servers following it apply this on their "
        "next poll")


@rollout_app.command("show")
def show_command(name: Name, registry: RegistryUrl = None, as_json: AsJson = False) -> None:
    """The rollouts of a model: the candidate beside each alias, and its shares."""
    with open_registry(registry) as store:
        rollouts = store.rollouts(name)
        aliases = store.aliases(name)
    if as_json:
        emit([{**r.to_dict(), "baseline": aliases.get(r.alias)} for r in rollouts])
        return
    if not rollouts:
        say(f"{name}: no rollout")
        return
    for r in rollouts:
        say(f"{name}@{r.alias} (version {aliases.get(r.alias)}) + {r.describe()} (since "
            f"{r.updated_at:%Y-%m-%d %H:%M:%S} UTC)")


@rollout_app.command("clear")
def clear_command(name: Name, alias: Alias = "production", registry: RegistryUrl = None,
                  as_json: AsJson = False) -> None:
    """End the rollout beside an alias: servers drop the candidate on their next poll."""
    with open_registry(registry) as store:
        cleared = store.clear_rollout(name, alias)
    if as_json:
        emit(cleared.to_dict())
        return
    say(f"cleared {name}@{alias}'s rollout ({cleared.describe()})")


def promote_command(
    name: Name,
    candidate: Annotated[int, typer.Option("--candidate", help="The candidate version number.")],
    to: Annotated[str, typer.Option("--to", help="The alias to move (its version is the baseline).")]
    = "production",
    require: Annotated[list[str] | None, typer.Option(
        "--require", metavar="RULE", help="A requirement on the compared traffic, e.g. 'accuracy >= baseline - "
        "0.01' or 'p99_ms <= 1.2 * baseline' (repeatable; see docs/rollouts.md).")] = None,
    min_labels: Annotated[int, typer.Option(min=0, help="Labelled rows each version needs.")] = 0,
    since: Annotated[str, typer.Option(help="The window of traffic compared: 15m, 24h, 7d, ...")] = "24h",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the verdict; move nothing.")] = False,
    registry: RegistryUrl = None,
    monitor_dir: Annotated[str | None, typer.Option(
        "--monitor-dir", help="The monitoring directory (default $BERTH_MONITOR_DIR or $BERTH_HOME/monitoring).")]
    = None,
    as_json: AsJson = False,
) -> None:
    """Move an alias to a candidate only if every requirement holds on the compared live traffic.

    Exit codes: 0 promoted (or, with --dry-run, would be); 3 refused, a requirement does not hold; 4 not enough
    evidence (fewer labelled rows than --min-labels, or a required metric not measured); 2 usage error; 1 any
    other failure. The evidence is printed and, on promotion, kept in the audit log (berth audit NAME).
    """
    import datetime as dt

    from berth.monitoring.compare import compare
    from berth.monitoring.gate import judge, parse
    from berth.monitoring.store import Store, parse_duration

    requirements = [parse(text) for text in require or []]
    window = parse_duration(since)
    with open_registry(registry) as store:
        baseline = store.aliases(name).get(to)
        if baseline is None:
            from berth.errors import RegistryNotFoundError

            raise RegistryNotFoundError(f"model {name!r} has no alias {to!r} to promote into")
        store.get_version(name, candidate)
        comparison = compare(name, str(baseline), str(candidate), since=dt.datetime.now(dt.UTC) - window,
                             store=Store(monitor_dir))
        verdict = judge(requirements, comparison, min_labels)
        verdict.update(model=name, alias=to, since=since, dry_run=dry_run, promoted=False)
        if verdict["verdict"] == "passed" and not dry_run:
            store.promote(name, candidate, to, evidence=json.dumps(
                {k: verdict[k] for k in ("requirements", "min_labels", "labelled", "test", "since")}, default=str))
            verdict["promoted"] = True
    if as_json:
        emit(verdict)
    else:
        print_verdict(verdict)
    if verdict["verdict"] == "refused":
        raise typer.Exit(EXIT_REFUSED)
    if verdict["verdict"] == "insufficient":
        raise typer.Exit(EXIT_INSUFFICIENT)


def print_verdict(verdict: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4g}"

    say(f"{verdict['model']}: candidate version {verdict['candidate']} vs {verdict['alias']} (version "
        f"{verdict['baseline']}) over the last {verdict['since']}; labelled rows: baseline "
        f"{verdict['labelled']['baseline']:,}, candidate {verdict['labelled']['candidate']:,}")
    for r in verdict["requirements"]:
        say(f"  {'PASS' if r['holds'] else 'FAIL'} {r['requirement']}: candidate {fmt(r['candidate'])}, "
            f"baseline {fmt(r['baseline'])}, threshold {fmt(r['threshold'])}")
    for reason in verdict["insufficient"]:
        say(f"  NOT ENOUGH EVIDENCE {reason}")
    test = verdict["test"]
    if test.get("test"):
        say(f"  {test['metric']} difference {fmt(test['difference'])} ({test['test']}, p = {fmt(test['p_value'])})")
    if verdict["promoted"]:
        say(f"promoted: {verdict['model']}@{verdict['alias']} -> version {verdict['candidate']} "
            f"(undo: berth rollback {verdict['model']} --alias {verdict['alias']})")
    elif verdict["verdict"] == "passed":
        say("dry run: every requirement holds; the alias was not moved")
    else:
        say(f"not promoted ({verdict['verdict']})")
