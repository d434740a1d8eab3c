"""What the registry hands out: plain, immutable records, detached from any database session."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from berth.registry.schema import AuditRow, VersionRow
from berth.registry.uri import ModelUri


def utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones. Make both aware UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def jsonable(record: Any) -> dict[str, Any]:
    data = asdict(record)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = value.isoformat()
    return data


@dataclass(frozen=True)
class ModelVersion:
    """One immutable registered version. ``existing`` is true when ``register`` found the same bundle already."""

    name: str
    version: int
    digest: str
    artifact_uri: str
    created_at: datetime
    flavor: str = ""
    format: str = ""
    size: int = 0
    description: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    data_fingerprint: str | None = None
    git_commit: str | None = None
    created_by: str = ""
    created_host: str = ""
    existing: bool = field(default=False, compare=False)

    @property
    def uri(self) -> str:
        return str(ModelUri(self.name, version=self.version))

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

    @classmethod
    def from_row(cls, name: str, row: VersionRow, existing: bool = False) -> ModelVersion:
        return cls(name=name, version=row.version, digest=row.digest, artifact_uri=row.artifact_uri,
                   created_at=utc(row.created_at), flavor=row.flavor, format=row.format, size=row.size,
                   description=row.description, metrics=dict(row.metrics), params=dict(row.params),
                   tags=dict(row.tags), data_fingerprint=row.data_fingerprint, git_commit=row.git_commit,
                   created_by=row.created_by, created_host=row.created_host, existing=existing)


@dataclass(frozen=True)
class RegisteredModel:
    """A model name with its versions' summary and its aliases (alias -> version number)."""

    name: str
    description: str
    latest_version: int | None
    version_count: int
    aliases: dict[str, int]
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)


@dataclass(frozen=True)
class AuditEvent:
    """One change to a model. ``action``: register, alias.set, alias.rm, alias.rollback, tag.set, tag.rm,
    version.delete, model.delete. ``key`` is the alias or tag concerned."""

    id: int
    model: str
    action: str
    version: int | None
    key: str | None
    old_value: str | None
    new_value: str | None
    user: str
    host: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return jsonable(self)

    @classmethod
    def from_row(cls, row: AuditRow) -> AuditEvent:
        return cls(id=row.id, model=row.model_name, action=row.action, version=row.version, key=row.key,
                   old_value=row.old_value, new_value=row.new_value, user=row.user, host=row.host, at=utc(row.at))
