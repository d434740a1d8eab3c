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


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
    app.add_typer(rollout_app)


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
