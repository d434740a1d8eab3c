"""Commands for the model registry: register, models, alias, rollback, audit, registry upgrade.

Like ``berth.cli.main``, nothing heavy is imported at module level: each command imports what it uses. Every command
prints rich tables (or a line) for people and ``--json`` for scripts; errors are BerthErrors, printed by the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from berth.cli.options import Trust, TrustedTypes
from berth.cli.output import print_json

if TYPE_CHECKING:
    from berth.registry.records import ModelVersion
    from berth.registry.store import Registry

RegistryUrl = Annotated[str | None, typer.Option(
    "--registry", metavar="URL", help="Registry database (default $BERTH_REGISTRY_URL, else "
                                      "sqlite:///$BERTH_HOME/registry.db).")]
ArtifactsUrl = Annotated[str | None, typer.Option(
    "--artifacts", metavar="URL", help="Artifact store for new versions (default $BERTH_ARTIFACTS_URL, else "
                                       "$BERTH_HOME/artifacts).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")]
Name = Annotated[str, typer.Argument(help="The registered model's name.")]

models_app = typer.Typer(help="List, show, compare, tag and delete registered models.", no_args_is_help=True)
alias_app = typer.Typer(help="Point aliases (production, staging...) at versions.", no_args_is_help=True)
registry_app = typer.Typer(help="Maintain the registry: schema upgrades, orphan cleanup.", no_args_is_help=True)


def install(app: typer.Typer) -> None:
    """Add this module's commands to the ``berth`` app."""
    app.command("register")(register_command)
    app.command("rollback")(rollback_command)
    app.command("audit")(audit_command)
    app.add_typer(models_app, name="models")
    app.add_typer(alias_app, name="alias")
    app.add_typer(registry_app, name="registry")


def open_registry(url: str | None, artifacts: str | None = None) -> Registry:
    from berth.registry.store import Registry

    return Registry(url, artifacts)



def parse_tags(values: list[str] | None) -> dict[str, str]:
    from berth.errors import UsageError

    tags = {}
    for value in values or []:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag takes KEY=VALUE, not {value!r}")
        tags[key.strip()] = text
    return tags


def say(text: str) -> None:
    typer.echo(text)


# --------------------------------------------------------------------------- register, rollback, audit


def register_command(
    bundle: Annotated[str, typer.Argument(help="A bundle directory, a .berth file, or a URL (s3://...).")],
    name: Annotated[str, typer.Option("--name", "-n", help="The model's name in the registry.")],
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", help="Point this alias at the version (repeatable), e.g. --alias production.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", metavar="KEY=VALUE", help="A tag (repeatable).")] = None,
    description: Annotated[str | None, typer.Option(help="Describe the version (default: the manifest's).")] = None,
    compile: Annotated[bool, typer.Option(
        "--compile", help="Register the bundle with a compiled twin: one is built and proven first (the bundle "
                          "is loaded for that: --trust / --trusted-type apply); nothing is registered if it is "
                          "refused. A bundle that already has a proven twin is registered as it is.")] = False,
    trust: Trust = False,
    trusted_type: TrustedTypes = None,
    registry: RegistryUrl = None,
    artifacts: ArtifactsUrl = None,
    as_json: AsJson = False,
) -> None:
    """Register a bundle as the next version of a model (or find the version that already holds it).

    The bundle is copied as it is (bundles are immutable and keep their digest); --compile registers a new bundle
    that adds a proven compiled twin, as ``berth compile`` would write it."""
    import tempfile
    from pathlib import Path

    tags = parse_tags(tag)
    with open_registry(registry, artifacts) as store, tempfile.TemporaryDirectory(prefix="berth-register-") as tmp:
        source, twin = with_twin(bundle, name, Path(tmp) / "bundle", trust, trusted_type or [], store) \
            if compile else (bundle, None)
        version = store.register(source, name, aliases=alias or [], tags=tags, description=description)
    if as_json:
        print_json(version.to_dict() | ({"compiled_twin": twin} if twin else {}))
        return
    if twin:
        say(f"compiled twin: {twin}")
    if version.existing:
        say(f"{name} version {version.version} already holds this bundle ({version.digest}); nothing copied")
    else:
        say(f"registered {name} version {version.version} ({version.digest}) -> {version.uri}")
    for given in alias or []:
        say(f"alias {given} -> {version.version}")


def with_twin(bundle: str, name: str, staging: Any, trust: bool, trusted_types: list[str],
              store: Registry) -> tuple[str, str]:
    """What to register for ``register --compile``, and the twin's description (runtime and proof): ``bundle``
    itself if it has a proven twin; the version of ``name`` already compiled from it, if there is one (so that
    registering the same bundle again finds that version, as a plain register does); else a new bundle at
    ``staging`` that adds a twin."""
    from berth.compile import describe, proven
    from berth.compile.rebuild import compile_bundle
    from berth.errors import RegistryNotFoundError
    from berth.manifest import Manifest
    from berth.source import open_bundle

    with open_bundle(bundle, registry=store) as opened:
        if proven(opened.manifest):
            return bundle, describe(opened.manifest)
        digest = opened.manifest.content_digest
    try:
        versions = store.versions(name)
    except RegistryNotFoundError:  # a new model: nothing compiled from this bundle yet
        versions = []
    for version in reversed(versions):
        stored = store.manifest(name, version.version)
        if (stored.get("lineage") or {}).get("compiled_from") == digest:
            earlier = Manifest.from_dict(stored)
            if proven(earlier):
                return version.uri, describe(earlier)
    manifest = compile_bundle(bundle, staging, trust=trust, trusted_types=trusted_types, registry=store)
    return str(staging), describe(manifest)


def rollback_command(
    name: Name,
    alias: Annotated[str, typer.Option("--alias", help="The alias to move back.")] = "production",
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Move an alias back to the version it held before its last move."""
    with open_registry(registry) as store:
        version = store.rollback(name, alias)
    if as_json:
        print_json({"name": name, "alias": alias, "version": version.version})
    else:
        say(f"{name}@{alias} -> version {version.version}")


def audit_command(
    name: Name,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the last N events.")] = None,
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Every change to a model: registrations, alias moves, tag changes, deletions; who and when."""
    with open_registry(registry) as store:
        events = store.audit(name, limit)
    if as_json:
        print_json([event.to_dict() for event in events])
        return
    from rich.table import Table
    from rich.text import Text

    from berth.cli.render import stdout_console

    table = Table(title=f"Audit log of {name}", title_justify="left")
    for column in ("when", "action", "version", "key", "old", "new", "who"):
        table.add_column(column)
    for event in events:
        table.add_row(event.at.strftime("%Y-%m-%d %H:%M:%S"), event.action, cell(event.version), Text(cell(event.key)),
                      Text(short(event.old_value)), Text(short(event.new_value)), Text(f"{event.user}@{event.host}"))
    stdout_console().print(table)


# --------------------------------------------------------------------------- models


@models_app.command("list")
def models_list_command(registry: RegistryUrl = None, as_json: AsJson = False) -> None:
    """Every registered model: latest version, number of versions, aliases."""
    with open_registry(registry) as store:
        models = store.list_models()
    if as_json:
        print_json([model.to_dict() for model in models])
        return
    from rich.table import Table
    from rich.text import Text

    from berth.cli.render import stdout_console

    table = Table(title="Registered models", title_justify="left")
    for column in ("name", "latest", "versions", "aliases", "updated"):
        table.add_column(column)
    for model in models:
        aliases = ", ".join(f"{alias} -> {version}" for alias, version in model.aliases.items())
        table.add_row(Text(model.name), cell(model.latest_version), str(model.version_count), Text(aliases or "-"),
                      model.updated_at.strftime("%Y-%m-%d %H:%M:%S"))
    stdout_console().print(table)


@models_app.command("show")
def models_show_command(name: Name, registry: RegistryUrl = None, as_json: AsJson = False) -> None:
    """A model's versions (metrics, who and when) and aliases."""
    with open_registry(registry) as store:
        model = store.get_model(name)
        versions = store.versions(name)
    if as_json:
        print_json({**model.to_dict(), "versions": [version.to_dict() for version in versions]})
        return
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from berth.cli.render import human_size, stdout_console

    held: dict[int, list[str]] = {}
    for alias, number in model.aliases.items():
        held.setdefault(number, []).append(alias)
    table = Table(title=f"{name}: {model.version_count} versions", title_justify="left")
    for column in ("version", "aliases", "created", "by", "flavor", "size", "metrics", "tags", "digest"):
        table.add_column(column, overflow="fold")
    for version in versions:
        table.add_row(str(version.version), Text(", ".join(held.get(version.version, [])) or "-"),
                      version.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      Text(f"{version.created_by}@{version.created_host}"), f"{version.flavor}/{version.format}",
                      human_size(version.size), Text(cell(version.metrics)), Text(cell(version.tags)),
                      version.digest.split(":")[-1][:12])
    parts: list[Any] = [table]
    if model.description:
        parts.insert(0, Text(model.description))
    stdout_console().print(Group(*parts))


@models_app.command("diff")
def models_diff_command(
    name: Name,
    first: Annotated[int, typer.Argument(metavar="V1", min=1, help="One version.")],
    second: Annotated[int, typer.Argument(metavar="V2", min=1, help="The version to compare it with.")],
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Two versions side by side: metrics, params, signature, library versions, lineage."""
    from berth.registry.diff import diff_versions

    with open_registry(registry) as store:
        sections = diff_versions(store, name, first, second)
    if as_json:
        print_json({"name": name, "versions": [first, second], "sections": sections})
        return
    from rich.table import Table
    from rich.text import Text

    from berth.cli.render import stdout_console

    table = Table(title=f"{name}: version {first} vs {second}", title_justify="left")
    for column in ("section", "key", f"v{first}", f"v{second}"):
        table.add_column(column, overflow="fold")
    for section, rows in sections.items():
        for key, (left, right) in rows.items():
            style = "bold yellow" if left != right else ""
            table.add_row(section, Text(key), Text(cell(left), style=style), Text(cell(right), style=style))
    stdout_console().print(table)


@models_app.command("delete")
def models_delete_command(
    name: Name,
    version: Annotated[int | None, typer.Option("--version", "-v", min=1, help="Delete only this version.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Also remove aliases that point at what is deleted.")] = False,
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Delete a version, or the whole model, with its bundles; refused while an alias points at it."""
    with open_registry(registry) as store:
        if version is not None:
            deleted = [store.delete_version(name, version, force=force).version]
        else:
            deleted = store.delete_model(name, force=force)
    if as_json:
        print_json({"name": name, "deleted_versions": deleted, "model_deleted": version is None})
    elif version is not None:
        say(f"deleted {name} version {version}")
    else:
        say(f"deleted model {name} ({len(deleted)} versions)")


@models_app.command("tag")
def models_tag_command(
    name: Name,
    version: Annotated[int, typer.Argument(min=1, help="The version to tag.")],
    tag: Annotated[list[str] | None, typer.Argument(metavar="KEY=VALUE...", help="Tags to set.")] = None,
    remove: Annotated[list[str] | None, typer.Option(
        "--rm", metavar="KEY", help="A tag to remove (repeatable).")] = None,
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Set or remove tags of a version (audited)."""
    from berth.errors import UsageError

    tags = parse_tags(tag)
    if not tags and not remove:
        raise UsageError("give tags to set (KEY=VALUE) or --rm KEY")
    with open_registry(registry) as store:
        updated = store.set_tags(name, version, tags, remove or [])
    if as_json:
        print_json(updated.to_dict())
    else:
        say(f"{name} version {version} tags: " + (", ".join(f"{k}={v}" for k, v in updated.tags.items()) or "none"))


# --------------------------------------------------------------------------- aliases


@alias_app.command("set")
def alias_set_command(
    name: Name,
    alias: Annotated[str, typer.Argument(help="The alias, e.g. production.")],
    version: Annotated[int, typer.Argument(min=1, help="The version it points at.")],
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Point an alias at a version (servers following it switch within seconds)."""
    with open_registry(registry) as store:
        found = store.set_alias(name, alias, version)
    report_alias(name, alias, found, as_json)


@alias_app.command("rm")
def alias_rm_command(
    name: Name,
    alias: Annotated[str, typer.Argument(help="The alias to remove.")],
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Remove an alias."""
    with open_registry(registry) as store:
        old = store.remove_alias(name, alias)
    if as_json:
        print_json({"name": name, "alias": alias, "removed_from": old})
    else:
        say(f"removed alias {name}@{alias} (was version {old})")


def report_alias(name: str, alias: str, version: ModelVersion, as_json: bool) -> None:
    if as_json:
        print_json({"name": name, "alias": alias, "version": version.version})
    else:
        say(f"{name}@{alias} -> version {version.version}")


# --------------------------------------------------------------------------- maintenance


@registry_app.command("upgrade")
def registry_upgrade_command(registry: RegistryUrl = None, as_json: AsJson = False) -> None:
    """Apply pending schema migrations to the registry database (an old database is upgraded in place)."""
    from berth.registry.database import display_url

    with open_registry(registry) as store:
        before, after = store.upgrade()
        where = display_url(store.url)
    if as_json:
        print_json({"registry": where, "from": before, "to": after})
    elif before == after:
        say(f"registry {where} is at the current schema ({after})")
    else:
        say(f"upgraded registry {where} from {before or 'empty'} to {after}")


@registry_app.command("clean")
def registry_clean_command(
    older_than: Annotated[float, typer.Option(
        "--older-than", min=0, help="Also remove uploads from other hosts pending this many seconds.")] = 3600,
    registry: RegistryUrl = None,
    as_json: AsJson = False,
) -> None:
    """Delete bundles left by interrupted registrations or deletions (no version owns them)."""
    with open_registry(registry) as store:
        removed = store.clean_orphans(older_than)
    if as_json:
        print_json({"removed": removed})
    else:
        say(f"removed {len(removed)} orphaned artifact location(s)")
        for location in removed:
            say(f"  {location}")


def cell(value: Any) -> str:
    """A table cell: "-" for nothing, numbers shortened, dicts and lists flattened."""
    from berth.cli.render import flat

    return "-" if value is None or value == "" or value == {} else flat(value)


def short(value: str | None, width: int = 24) -> str:
    if value is None:
        return "-"
    return value if len(value) <= width else value[:width - 1] + "…"
