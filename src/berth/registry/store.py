"""The model registry: registered models, immutable numbered versions, aliases, tags and the audit log.

A registration verifies the bundle, records a *pending* artifact location, uploads there, reads the copy back
to verify it, and only then commits the version row (which removes the pending record in the same
transaction). Killed at any point, it leaves no visible version; a later run deletes what it uploaded.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.orm import Session, defer

from berth import config, lineage
from berth.errors import RegistryConflictError, RegistryError, RegistryNotFoundError, RegistrySchemaError
from berth.manifest import Manifest
from berth.processes import pid_alive
from berth.registry import database
from berth.registry.artifacts import ArtifactStore
from berth.registry.records import AuditEvent, ModelVersion, RegisteredModel, Rollout, utc
from berth.registry.schema import AliasRow, AuditRow, ModelRow, PendingRow, RolloutRow, VersionRow
from berth.registry.uri import FORMS, ModelUri, check_alias, check_name, parse_model_uri
from berth.source import open_bundle

ORPHAN_GRACE_S = 3600.0
ALIAS_ACTIONS = ("alias.set", "alias.rm", "alias.rollback")


def default_url() -> str:
    return config.registry_url()


def default_artifacts() -> str:
    return config.artifacts_url()


def now() -> datetime:
    return datetime.now(UTC)



def dispose_engines(*engines: sa.Engine) -> None:
    for engine in engines:
        engine.dispose()


class Registry:
    """Models, versions, aliases, tags and audit log in SQLite or PostgreSQL; bundles in a file or S3 store.

    ``url`` defaults to ``$BERTH_REGISTRY_URL`` or ``sqlite:///$BERTH_HOME/registry.db``; ``artifacts`` to
    ``$BERTH_ARTIFACTS_URL`` or ``$BERTH_HOME/artifacts``. Migrations are applied on first use unless
    ``auto_upgrade=False``. One instance may be shared between threads.
    """

    def __init__(self, url: str | None = None, artifacts: str | os.PathLike[str] | None = None, *,
                 auto_upgrade: bool = True) -> None:
        self.url = database.normalize_url(url or default_url())
        self.artifacts = ArtifactStore(artifacts or default_artifacts())
        self._engine = database.create_engine(self.url)
        self._poll_engine = database.poll_engine(self._engine)
        # A registry dropped without close() still returns its pooled connections (PostgreSQL's are sockets).
        self._finalizer = weakref.finalize(self, dispose_engines, self._engine, self._poll_engine)
        self._auto_upgrade = auto_upgrade
        self._current = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Registry({database.display_url(self.url)!r}, artifacts={self.artifacts.root!r})"

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._finalizer()

    # ------------------------------------------------------------------ schema

    @property
    def engine(self) -> sa.Engine:
        """The engine, once the schema is current (migrated on first use)."""
        self._ensure_schema()
        return self._engine

    def _ensure_schema(self) -> None:
        if not self._current:
            with self._lock:
                if not self._current:
                    if self._auto_upgrade:
                        database.ensure_current(self._engine, self.url)
                    elif self.revision() != database.head_revision():
                        raise RegistrySchemaError(f"the registry database {database.display_url(self.url)} is not "
                                                  "at the current schema; run: berth registry upgrade")
                    self._current = True

    def revision(self) -> str | None:
        """The schema revision the database is at (None for an empty database)."""
        with self._engine.connect() as connection:
            return database.current_revision(connection)

    def upgrade(self) -> tuple[str | None, str | None]:
        """Apply every pending migration; returns the revisions before and after."""
        with self._lock:
            result = database.upgrade(self._engine, self.url)
            self._current = True
        return result

    @contextmanager
    def _read(self) -> Iterator[Session]:
        try:
            with database.read_session(self.engine) as session:
                yield session
        except sa.exc.DBAPIError as error:
            raise database.database_error(error, self.url) from error

    def _write(self, action: Any) -> Any:
        """Run ``action(session)`` in a write transaction, retried when it lost a race."""
        def attempt() -> Any:
            with database.write_session(self.engine) as session:
                return action(session)

        return database.retrying(attempt, self.url)

    # ------------------------------------------------------------------ registering

    def register(self, bundle: str | os.PathLike[str], name: str, *, aliases: Iterable[str] = (),
                 tags: dict[str, str] | None = None, description: str | None = None) -> ModelVersion:
        """Register the bundle at ``bundle`` (directory, ``.berth`` file or URL) as the next version of ``name``.

        If a version of ``name`` already holds a bundle with the same content digest, that version is returned
        (with ``existing=True``) and nothing is copied; ``aliases`` and ``tags`` are applied to it.
        """
        check_name(name)
        aliases = [check_alias(alias) for alias in aliases]
        tags = check_tags(tags or {})
        self.clean_orphans()
        with open_bundle(bundle, registry=self) as opened:
            directory, manifest = opened.directory, opened.manifest
            digest = manifest.content_digest
            found = self._find_digest(name, digest)
            if found is not None:
                return self._write(lambda s: self._apply(s, name, found, aliases, tags, existing=True))
            pending_id = uuid.uuid4().hex
            location = self.artifacts.new_location(name, digest)
            self._write(lambda s: s.add(PendingRow(id=pending_id, model_name=name, artifact_uri=location,
                                                   purpose="upload", host=socket.gethostname(),
                                                   pid=os.getpid(), created_at=now())))
            try:
                self.artifacts.upload(directory, location, manifest)
                self.artifacts.verify(location, manifest)
            except BaseException:
                with suppress(Exception):  # best effort: a later clean_orphans finishes it otherwise
                    self._finish_pending([(pending_id, location)])
                raise
        who = lineage.author()
        version = self._write(lambda s: self._commit(s, name, manifest, location, pending_id, aliases, tags,
                                                     description, who))
        if version.existing:  # another process registered the same bundle meanwhile: ours is surplus
            self._finish_pending([(pending_id, location)])
        return version

    def _find_digest(self, name: str, digest: str) -> int | None:
        with self._read() as session:
            return session.scalar(
                sa.select(VersionRow.version).join(ModelRow, ModelRow.id == VersionRow.model_id)
                .where(ModelRow.name == name, VersionRow.digest == digest).order_by(VersionRow.version).limit(1))

    def _commit(self, s: Session, name: str, manifest: Manifest, location: str, pending_id: str,
                aliases: list[str], tags: dict[str, str], description: str | None,
                who: dict[str, str]) -> ModelVersion:
        model = self._model(s, name, create=True, lock=True)
        pending = s.get(PendingRow, pending_id, with_for_update=True)
        if pending is None or pending.purpose != "upload":
            raise RegistryConflictError(f"the upload to {location} was taken for an orphan and removed before "
                                        "it could be committed (it took longer than the orphan grace period); "
                                        "register again")
        duplicate = s.scalar(sa.select(VersionRow.version).where(
            VersionRow.model_id == model.id, VersionRow.digest == manifest.content_digest)
            .order_by(VersionRow.version).limit(1))
        if duplicate is not None:
            pending.purpose = "delete"
            return self._apply(s, name, duplicate, aliases, tags, existing=True)
        model.last_version += 1
        model.updated_at = now()
        text = manifest.description if description is None else description
        if not model.description:
            model.description = text
        stored = manifest.to_dict()
        reference = stored.pop("reference", None) or {}
        stored["reference"] = {k: reference[k] for k in ("rows", "fingerprint") if k in reference} or None
        git = manifest.lineage.get("git") or {}
        row = VersionRow(
            model_id=model.id, version=model.last_version, digest=manifest.content_digest, artifact_uri=location,
            flavor=manifest.flavor, format=manifest.format, size=manifest.size, description=text,
            metrics=stored["metrics"], params=stored["params"], tags={**manifest.tags, **tags}, manifest=stored,
            data_fingerprint=reference.get("fingerprint") or manifest.lineage.get("data_fingerprint"),
            git_commit=git.get("commit") if isinstance(git, dict) else None,
            created_by=who["user"], created_host=who["host"], created_at=now())
        s.add(row)
        s.delete(pending)
        self._audit(s, name, "register", row.version, new=row.digest)
        s.flush()
        for alias in aliases:
            self._move_alias(s, model, alias, row)
        return ModelVersion.from_row(name, row)

    def _apply(self, s: Session, name: str, version: int, aliases: list[str], tags: dict[str, str], *,
               existing: bool) -> ModelVersion:
        model = self._model(s, name, lock=True)
        row = self._version_row(s, model, version, lock=True)
        for alias in aliases:
            self._move_alias(s, model, alias, row)
        self._change_tags(s, name, row, tags, ())
        return ModelVersion.from_row(name, row, existing=existing)

    # ------------------------------------------------------------------ reading

    def resolve(self, uri: str | ModelUri) -> ModelVersion:
        """The version a ``models:/`` URI names: ``models:/iris/3``, ``models:/iris@production``, ``.../latest``."""
        parsed = uri if isinstance(uri, ModelUri) else parse_model_uri(str(uri))
        if parsed is None:
            raise RegistryError(f"{uri!r} is not a model URI: use {FORMS}")
        if parsed.alias is not None:
            found = self.alias_version(parsed.name, parsed.alias)
            if found is None:
                self._raise_missing(parsed.name, f"alias {parsed.alias!r}")
            return found
        if parsed.latest:
            return self.latest_version(parsed.name)
        assert parsed.version is not None
        return self.get_version(parsed.name, parsed.version)

    def alias_version(self, name: str, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at, or None: one indexed query, cheap enough to poll."""
        columns = [c for c in VersionRow.__table__.columns if c.name != "manifest"]
        statement = (sa.select(*columns).join(AliasRow, AliasRow.version_id == VersionRow.id)
                     .join(ModelRow, ModelRow.id == AliasRow.model_id)
                     .where(ModelRow.name == name, AliasRow.alias == alias))
        self._ensure_schema()
        engine = self._poll_engine
        for attempt in (1, 2):
            try:
                with engine.connect() as connection:
                    row = connection.execute(statement).first()
                return ModelVersion.from_row(name, row) if row is not None else None  # type: ignore[arg-type]
            except sa.exc.DBAPIError as error:  # a server restart drops pooled connections: reconnect once
                if attempt == 2 or not error.connection_invalidated:
                    raise database.database_error(error, self.url) from error
        raise AssertionError("unreachable")

    def follow_state(self, name: str, alias: str) -> tuple[ModelVersion | None, Rollout | None]:
        """Where ``alias`` points and the rollout beside it, in one round trip's worth of queries (the poll of
        a server following the alias)."""
        columns = [c for c in VersionRow.__table__.columns if c.name != "manifest"]
        version_query = (sa.select(*columns).join(AliasRow, AliasRow.version_id == VersionRow.id)
                         .join(ModelRow, ModelRow.id == AliasRow.model_id)
                         .where(ModelRow.name == name, AliasRow.alias == alias))
        rollout_query = self._rollout_query().where(ModelRow.name == name, RolloutRow.alias == alias)
        self._ensure_schema()
        for attempt in (1, 2):
            try:
                with self._poll_engine.connect() as connection:
                    if connection.dialect.name == "postgresql":
                        # both reads from one snapshot: under READ COMMITTED a promotion committed between them
                        # reads as "alias unmoved, rollout gone", and the follower drops the candidate it was
                        # about to promote (then loads that version again). SQLite's read is one snapshot already
                        connection.execution_options(isolation_level="REPEATABLE READ")
                    row = connection.execute(version_query).first()
                    rollout = connection.execute(rollout_query).first()
                return (ModelVersion.from_row(name, row) if row is not None else None,  # type: ignore[arg-type]
                        self._rollout_record(rollout) if rollout is not None else None)
            except sa.exc.DBAPIError as error:  # a server restart drops pooled connections: reconnect once
                if attempt == 2 or not error.connection_invalidated:
                    raise database.database_error(error, self.url) from error
        raise AssertionError("unreachable")

    def get_version(self, name: str, version: int) -> ModelVersion:
        with self._read() as session:
            row = session.scalar(self._versions_query(name).where(VersionRow.version == int(version)))
            if row is None:
                self._raise_missing(name, f"version {version}", session)
            return ModelVersion.from_row(name, row)

    def latest_version(self, name: str) -> ModelVersion:
        with self._read() as session:
            row = session.scalar(self._versions_query(name).order_by(VersionRow.version.desc()).limit(1))
            if row is None:
                self._raise_missing(name, "versions", session)
            return ModelVersion.from_row(name, row)

    def versions(self, name: str) -> list[ModelVersion]:
        with self._read() as session:
            rows = session.scalars(self._versions_query(name).order_by(VersionRow.version)).all()
            if not rows:
                self._model(session, name)
            return [ModelVersion.from_row(name, row) for row in rows]

    def manifest(self, name: str, version: int) -> dict[str, Any]:
        """The manifest stored with a version (without reference statistics), as a dict."""
        with self._read() as session:
            found = session.scalar(sa.select(VersionRow.manifest).join(ModelRow, ModelRow.id == VersionRow.model_id)
                                   .where(ModelRow.name == name, VersionRow.version == int(version)))
            if found is None:
                self._raise_missing(name, f"version {version}", session)
            return dict(found)

    def aliases(self, name: str) -> dict[str, int]:
        with self._read() as session:
            model = self._model(session, name)
            return self._aliases(session, [model.id]).get(model.id, {})

    def get_model(self, name: str) -> RegisteredModel:
        with self._read() as session:
            return self._summaries(session, [self._model(session, name)])[0]

    def list_models(self) -> list[RegisteredModel]:
        with self._read() as session:
            return self._summaries(session, list(session.scalars(sa.select(ModelRow).order_by(ModelRow.name))))

    def audit(self, name: str, limit: int | None = None) -> list[AuditEvent]:
        """The audit log of ``name``, oldest first (the last ``limit`` events when given)."""
        check_name(name)
        statement = sa.select(AuditRow).where(AuditRow.model_name == name).order_by(AuditRow.id.desc())
        if limit is not None:
            statement = statement.limit(limit)
        with self._read() as session:
            rows = list(session.scalars(statement))
            if not rows:
                self._model(session, name)
            return [AuditEvent.from_row(row) for row in reversed(rows)]

    def _versions_query(self, name: str) -> sa.Select[VersionRow]:
        check_name(name)
        return (sa.select(VersionRow).options(defer(VersionRow.manifest))
                .join(ModelRow, ModelRow.id == VersionRow.model_id).where(ModelRow.name == name))

    def _summaries(self, s: Session, models: list[ModelRow]) -> list[RegisteredModel]:
        ids = [m.id for m in models]
        counts = {row[0]: (row[1], row[2]) for row in s.execute(
            sa.select(VersionRow.model_id, sa.func.count(), sa.func.max(VersionRow.version))
            .where(VersionRow.model_id.in_(ids)).group_by(VersionRow.model_id))}
        aliases = self._aliases(s, ids)
        return [RegisteredModel(name=m.name, description=m.description, latest_version=counts.get(m.id, (0, None))[1],
                                version_count=counts.get(m.id, (0, None))[0], aliases=aliases.get(m.id, {}),
                                created_at=utc(m.created_at), updated_at=utc(m.updated_at)) for m in models]

    @staticmethod
    def _aliases(s: Session, model_ids: list[int]) -> dict[int, dict[str, int]]:
        found: dict[int, dict[str, int]] = {}
        for model_id, alias, version in s.execute(
                sa.select(AliasRow.model_id, AliasRow.alias, VersionRow.version)
                .join(VersionRow, VersionRow.id == AliasRow.version_id)
                .where(AliasRow.model_id.in_(model_ids)).order_by(AliasRow.alias)):
            found.setdefault(model_id, {})[alias] = version
        return found

    # ------------------------------------------------------------------ aliases and tags

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        """Point ``alias`` at ``version`` of ``name`` (audited with the old and new version)."""
        check_name(name)
        check_alias(alias)

        def action(s: Session) -> ModelVersion:
            model = self._model(s, name, lock=True)
            row = self._version_row(s, model, version)
            self._move_alias(s, model, alias, row)
            return ModelVersion.from_row(name, row)

        return self._write(action)

    def remove_alias(self, name: str, alias: str) -> int:
        """Remove ``alias``; returns the version it pointed at."""
        check_name(name)
        check_alias(alias)

        def action(s: Session) -> int:
            model = self._model(s, name, lock=True)
            current = s.get(AliasRow, (model.id, alias))
            if current is None:
                raise RegistryNotFoundError(f"model {name!r} has no alias {alias!r}")
            old = s.get_one(VersionRow, current.version_id).version
            self._clear_rollout(s, model, alias)  # a rollout beside an alias that is gone has no baseline
            s.delete(current)
            self._audit(s, name, "alias.rm", old, key=alias, old=str(old))
            return old

        return self._write(action)

    def rollback(self, name: str, alias: str = "production") -> ModelVersion:
        """Move ``alias`` back to the version it held before its last move (repeatable, like an undo stack)."""
        check_name(name)
        check_alias(alias)

        def action(s: Session) -> ModelVersion:
            model = self._model(s, name, lock=True)
            current = s.get(AliasRow, (model.id, alias))
            if current is None:
                raise RegistryNotFoundError(f"model {name!r} has no alias {alias!r} to roll back")
            held = s.get_one(VersionRow, current.version_id).version
            events = s.scalars(sa.select(AuditRow).where(
                AuditRow.model_name == name,
                sa.or_(sa.and_(AuditRow.key == alias, AuditRow.action.in_(ALIAS_ACTIONS)),
                       AuditRow.action == "model.delete")).order_by(AuditRow.id))
            history = alias_history(events)
            existing = set(s.scalars(sa.select(VersionRow.version).where(VersionRow.model_id == model.id)))
            while history and (history[-1] == held or history[-1] not in existing):
                history.pop()
            if not history:
                raise RegistryConflictError(f"{name}@{alias} holds version {held} and has no earlier version to "
                                            "roll back to")
            row = self._version_row(s, model, history[-1])
            self._move_alias(s, model, alias, row, action="alias.rollback")
            return ModelVersion.from_row(name, row)

        return self._write(action)

    def set_tags(self, name: str, version: int, tags: dict[str, str] | None = None,
                 remove: Iterable[str] = ()) -> ModelVersion:
        """Set and remove tags of one version (tags are the only mutable part of a version; audited)."""
        check_name(name)
        tags = check_tags(tags or {})
        remove = list(remove)

        def action(s: Session) -> ModelVersion:
            model = self._model(s, name, lock=True)
            row = self._version_row(s, model, version, lock=True)
            missing = [key for key in remove if key not in row.tags]
            if missing:
                raise RegistryNotFoundError(f"{name} version {version} has no tag {', '.join(map(repr, missing))}")
            self._change_tags(s, name, row, tags, remove)
            return ModelVersion.from_row(name, row)

        return self._write(action)

    # ------------------------------------------------------------------ rollouts

    @staticmethod
    def _rollout_query() -> Any:  # a Select of (name, alias, version, canary, shadow, updated_at)
        return (sa.select(ModelRow.name, RolloutRow.alias, VersionRow.version, RolloutRow.canary_percent,
                          RolloutRow.shadow_share, RolloutRow.updated_at)
                .join(ModelRow, ModelRow.id == RolloutRow.model_id)
                .join(VersionRow, VersionRow.id == RolloutRow.version_id))

    @staticmethod
    def _rollout_record(row: Any) -> Rollout:
        return Rollout(name=row[0], alias=row[1], candidate=row[2], canary_percent=float(row[3]),
                       shadow_share=float(row[4]), updated_at=utc(row[5]))

    def rollout(self, name: str, alias: str = "production") -> Rollout | None:
        """The rollout beside ``alias`` of ``name``, or None."""
        check_name(name)
        check_alias(alias)
        with self._read() as session:
            self._model(session, name)
            row = session.execute(self._rollout_query().where(ModelRow.name == name,
                                                              RolloutRow.alias == alias)).first()
            return self._rollout_record(row) if row is not None else None

    def rollouts(self, name: str) -> list[Rollout]:
        """Every rollout of ``name`` (one per baseline alias)."""
        check_name(name)
        with self._read() as session:
            self._model(session, name)
            rows = session.execute(self._rollout_query().where(ModelRow.name == name)
                                   .order_by(RolloutRow.alias)).all()
            return [self._rollout_record(row) for row in rows]

    def set_rollout(self, name: str, candidate: int, *, alias: str = "production", canary: float = 0.0,
                    shadow: float = 0.0) -> Rollout:
        """Put version ``candidate`` beside ``alias``: answering ``canary`` % of the requests and/or shadowing
        ``shadow`` (a fraction) of the others. Servers following ``models:/NAME@ALIAS`` pick it up on their next
        poll. Audited (``rollout.set``, with the old and new state)."""
        import math

        check_name(name)
        check_alias(alias)
        if not (math.isfinite(canary) and 0 <= canary <= 100):
            raise RegistryError(f"the canary share is a percentage from 0 to 100, not {canary:g}")
        if not (math.isfinite(shadow) and 0 <= shadow <= 1):
            raise RegistryError(f"the shadow share is a fraction from 0 to 1, not {shadow:g}")
        if canary == 0 and shadow == 0:
            raise RegistryError("a rollout needs a canary share above 0 or a shadow share above 0 (to stop one, "
                                "clear it)")

        def action(s: Session) -> Rollout:
            model = self._model(s, name, lock=True)
            row = self._version_row(s, model, candidate)
            current = s.get(AliasRow, (model.id, alias))
            if current is None:
                self._raise_missing(name, f"alias {alias!r}", s)
            if current.version_id == row.id:
                raise RegistryConflictError(f"{name}@{alias} already is version {candidate}: a candidate must be "
                                            "another version")
            existing = s.get(RolloutRow, (model.id, alias))
            old, moment = None, now()
            if existing is None:
                existing = RolloutRow(model_id=model.id, alias=alias, version_id=row.id, canary_percent=canary,
                                      shadow_share=shadow, updated_at=moment)
                s.add(existing)
            else:
                old_version = s.get_one(VersionRow, existing.version_id).version
                old = Rollout(name, alias, old_version, existing.canary_percent, existing.shadow_share,
                              utc(existing.updated_at)).describe()
                existing.version_id, existing.canary_percent, existing.shadow_share = row.id, canary, shadow
                existing.updated_at = moment
            record = Rollout(name, alias, row.version, float(canary), float(shadow), moment)
            self._audit(s, name, "rollout.set", row.version, key=alias, old=old, new=record.describe())
            return record

        return self._write(action)

    def clear_rollout(self, name: str, alias: str = "production") -> Rollout:
        """End the rollout beside ``alias`` (servers drop the candidate on their next poll); returns it."""
        check_name(name)
        check_alias(alias)

        def action(s: Session) -> Rollout:
            model = self._model(s, name, lock=True)
            cleared = self._clear_rollout(s, model, alias)
            if cleared is None:
                raise RegistryNotFoundError(f"model {name!r} has no rollout beside {alias!r}")
            return cleared

        return self._write(action)

    def _clear_rollout(self, s: Session, model: ModelRow, alias: str,
                       action: str = "rollout.clear") -> Rollout | None:
        existing = s.get(RolloutRow, (model.id, alias))
        if existing is None:
            return None
        version = s.get_one(VersionRow, existing.version_id).version
        record = Rollout(model.name, alias, version, existing.canary_percent, existing.shadow_share,
                         utc(existing.updated_at))
        s.delete(existing)
        self._audit(s, model.name, action, version, key=alias, old=record.describe())
        return record

    def promote(self, name: str, candidate: int, alias: str = "production",
                evidence: str | None = None) -> ModelVersion:
        """Move ``alias`` to ``candidate`` and end the rollout beside it, in one transaction; ``evidence`` (the
        gate's verdict, as JSON) is kept in the audit log (``promote``). ``berth rollback`` undoes it."""
        check_name(name)
        check_alias(alias)

        def action(s: Session) -> ModelVersion:
            model = self._model(s, name, lock=True)
            row = self._version_row(s, model, candidate)
            current = s.get(AliasRow, (model.id, alias))
            old = s.get_one(VersionRow, current.version_id).version if current is not None else None
            self._clear_rollout(s, model, alias)
            self._move_alias(s, model, alias, row)
            self._audit(s, name, "promote", row.version, key=alias, old=None if old is None else str(old),
                        new=evidence)
            return ModelVersion.from_row(name, row)

        return self._write(action)

    def _move_alias(self, s: Session, model: ModelRow, alias: str, row: VersionRow,
                    action: str = "alias.set") -> None:
        current = s.get(AliasRow, (model.id, alias))
        if current is not None and current.version_id == row.id:
            return
        old = s.get_one(VersionRow, current.version_id).version if current is not None else None
        if current is None:
            s.add(AliasRow(model_id=model.id, alias=alias, version_id=row.id, updated_at=now()))
        else:
            current.version_id = row.id
            current.updated_at = now()
        self._audit(s, model.name, action, row.version, key=alias, old=None if old is None else str(old),
                    new=str(row.version))
        rollout = s.get(RolloutRow, (model.id, alias))
        if rollout is not None and rollout.version_id == row.id:  # the candidate took over: its rollout is over
            self._clear_rollout(s, model, alias)

    def _change_tags(self, s: Session, name: str, row: VersionRow, tags: dict[str, str],
                     remove: Iterable[str]) -> None:
        updated = dict(row.tags)
        for key, value in tags.items():
            if updated.get(key) != value:
                self._audit(s, name, "tag.set", row.version, key=key, old=updated.get(key), new=value)
                updated[key] = value
        for key in remove:
            if key in updated:
                self._audit(s, name, "tag.rm", row.version, key=key, old=updated.pop(key))
        row.tags = updated

    # ------------------------------------------------------------------ deleting

    def delete_version(self, name: str, version: int, *, force: bool = False) -> ModelVersion:
        """Delete one version and its bundle; refused while an alias points at it unless ``force``."""
        check_name(name)

        def action(s: Session) -> tuple[ModelVersion, list[tuple[str, str]]]:
            model = self._model(s, name, lock=True)
            row = self._version_row(s, model, version)
            self._drop_aliases(s, model, [row], force)
            self._audit(s, name, "version.delete", row.version, old=row.digest)
            trash = self._trash(s, name, [row])
            s.delete(row)
            return ModelVersion.from_row(name, row), trash

        deleted, trash = self._write(action)
        self._finish_pending(trash)
        return deleted

    def delete_model(self, name: str, *, force: bool = False) -> list[int]:
        """Delete a model with every version and bundle; refused while it has aliases unless ``force``."""
        check_name(name)

        def action(s: Session) -> tuple[list[int], list[tuple[str, str]]]:
            model = self._model(s, name, lock=True)
            rows = list(s.scalars(sa.select(VersionRow).where(VersionRow.model_id == model.id)
                                  .order_by(VersionRow.version)))
            self._drop_aliases(s, model, rows, force)
            trash = self._trash(s, name, rows)
            for row in rows:
                s.delete(row)
            s.flush()
            s.delete(model)
            self._audit(s, name, "model.delete", None, old=",".join(str(r.version) for r in rows) or None)
            return [r.version for r in rows], trash

        numbers, trash = self._write(action)
        self._finish_pending(trash)
        return numbers

    def _drop_aliases(self, s: Session, model: ModelRow, rows: list[VersionRow], force: bool) -> None:
        by_id = {row.id: row for row in rows}
        candidates = list(s.scalars(sa.select(RolloutRow).where(RolloutRow.model_id == model.id,
                                                                RolloutRow.version_id.in_(by_id))))
        if candidates and not force:
            described = ", ".join(f"version {by_id[r.version_id].version} beside {r.alias}" for r in candidates)
            raise RegistryConflictError(f"a rollout uses what would be deleted ({described}); clear it first "
                                        "(berth rollout clear), or pass force=True (--force)")
        for rollout in candidates:
            self._clear_rollout(s, model, rollout.alias)
        held = list(s.scalars(sa.select(AliasRow).where(AliasRow.model_id == model.id,
                                                        AliasRow.version_id.in_(by_id))))
        if held and not force:
            described = ", ".join(f"{a.alias} -> {by_id[a.version_id].version}" for a in held)
            raise RegistryConflictError(f"aliases point at what would be deleted ({described}); move or remove "
                                        "them first, or pass force=True (--force) to remove them too")
        for alias in held:
            version = by_id[alias.version_id].version
            self._clear_rollout(s, model, alias.alias)
            s.delete(alias)
            self._audit(s, model.name, "alias.rm", version, key=alias.alias, old=str(version))
        s.flush()

    @staticmethod
    def _trash(s: Session, name: str, rows: list[VersionRow]) -> list[tuple[str, str]]:
        """Record the bundles of deleted versions as pending deletion, in the deleting transaction."""
        trash = [(uuid.uuid4().hex, row.artifact_uri) for row in rows]
        for pending_id, location in trash:
            s.add(PendingRow(id=pending_id, model_name=name, artifact_uri=location, purpose="delete",
                             host=socket.gethostname(), pid=os.getpid(), created_at=now()))
        return trash

    # ------------------------------------------------------------------ orphans

    def clean_orphans(self, older_than_s: float = ORPHAN_GRACE_S) -> list[str]:
        """Delete artifacts no version owns: uploads of registrations that died (a dead process on this host,
        or older than ``older_than_s`` from any host) and deletions that were interrupted. Returns them."""
        with self._read() as session:
            pending = [(p.id, p.artifact_uri, p.purpose, p.host, p.pid, utc(p.created_at))
                       for p in session.scalars(sa.select(PendingRow))]
        host = socket.gethostname()
        moment = now()
        stale = [(pending_id, location) for pending_id, location, purpose, owner, pid, created in pending
                 if purpose == "delete" or (owner == host and not pid_alive(pid))
                 or (moment - created).total_seconds() > older_than_s]
        if not stale:
            return []

        def claim(s: Session) -> None:  # a registration still running now fails its commit, cleanly
            s.execute(sa.update(PendingRow).where(PendingRow.id.in_([i for i, _ in stale]))
                      .values(purpose="delete"))

        self._write(claim)
        self._finish_pending(stale)
        return [location for _, location in stale]

    def _finish_pending(self, items: list[tuple[str, str]]) -> None:
        for pending_id, location in items:
            self.artifacts.delete(location)
            self._write(lambda s, i=pending_id: s.execute(sa.delete(PendingRow).where(PendingRow.id == i)))

    # ------------------------------------------------------------------ helpers

    def _model(self, s: Session, name: str, *, create: bool = False, lock: bool = False) -> ModelRow:
        statement = sa.select(ModelRow).where(ModelRow.name == name)
        model = s.scalar(statement.with_for_update() if lock else statement)
        if model is not None:
            return model
        if not create:
            raise RegistryNotFoundError(f"no model named {name!r} in the registry {database.display_url(self.url)}")
        model = ModelRow(name=name, description="", last_version=0, created_at=now(), updated_at=now())
        s.add(model)
        s.flush()  # a concurrent creator makes this raise IntegrityError; the transaction is retried
        return model

    @staticmethod
    def _version_row(s: Session, model: ModelRow, version: int, lock: bool = False) -> VersionRow:
        statement = sa.select(VersionRow).where(VersionRow.model_id == model.id, VersionRow.version == int(version))
        row = s.scalar(statement.with_for_update() if lock else statement)
        if row is None:
            known = list(s.scalars(sa.select(VersionRow.version).where(VersionRow.model_id == model.id)
                                   .order_by(VersionRow.version)))
            raise RegistryNotFoundError(f"model {model.name!r} has no version {version} (versions: "
                                        f"{', '.join(map(str, known)) or 'none'})")
        return row

    def _raise_missing(self, name: str, what: str, session: Session | None = None) -> NoReturn:
        if session is None:
            with self._read() as fresh:
                self._raise_missing(name, what, fresh)
        model = self._model(session, name)
        hint = ""
        if what.startswith("alias"):
            known = self._aliases(session, [model.id]).get(model.id, {})
            hint = f" (aliases: {', '.join(f'{a} -> {v}' for a, v in known.items()) or 'none'})"
        elif what.startswith("version "):
            numbers = session.scalars(sa.select(VersionRow.version).where(VersionRow.model_id == model.id)
                                      .order_by(VersionRow.version))
            hint = f" (versions: {', '.join(map(str, numbers)) or 'none'})"
        raise RegistryNotFoundError(f"model {name!r} has no {what}{hint}")

    @staticmethod
    def _audit(s: Session, name: str, action: str, version: int | None, *, key: str | None = None,
               old: str | None = None, new: str | None = None) -> None:
        who = lineage.author()
        s.add(AuditRow(model_name=name, action=action, version=version, key=key, old_value=old, new_value=new,
                       user=who["user"], host=who["host"], at=now()))


def alias_history(events: Iterable[AuditRow]) -> list[int]:
    """The versions an alias held, oldest first, replayed from its audit events (a rollback pops one)."""
    stack: list[int] = []
    for event in events:
        if event.action == "alias.set" and event.new_value is not None:
            stack.append(int(event.new_value))
        elif event.action == "alias.rollback" and event.new_value is not None:
            target = int(event.new_value)
            while stack and stack[-1] != target:
                stack.pop()
            if not stack:
                stack.append(target)
        else:  # alias.rm, model.delete: the alias starts afresh
            stack.clear()
    return stack


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    clean = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 128:
            raise RegistryError(f"invalid tag key {key!r}: a non-empty string of at most 128 characters")
        clean[key] = str(value)
    return clean


_defaults: dict[tuple[str, str], Registry] = {}
_defaults_lock = threading.Lock()


def default_registry(url: str | None = None) -> Registry:
    """The registry at ``url`` (default: the one the environment names), shared per URL pair.

    For entry points given no :class:`Registry` (``berth.load``, ``create_app``, the CLI), through
    :func:`berth.registry.default.registry_for`; modules below them are passed the registry and never call this.
    """
    key = (database.normalize_url(url or default_url()), default_artifacts())
    with _defaults_lock:
        if key not in _defaults:
            _defaults[key] = Registry(*key)
        return _defaults[key]

