"""The registry's tables (SQLAlchemy 2). Alembic migrations in ``migrations/versions`` create and change them.

Every table is prefixed ``berth_`` and the migration version table is ``berth_alembic_version``, so a team's
PostgreSQL database can hold the registry beside other applications' tables.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

VERSION_TABLE = "berth_alembic_version"


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: sa.JSON, datetime: sa.DateTime(timezone=True)}


class ModelRow(Base):
    """A registered model: its name, and the last version number ever given (numbers are never reused)."""

    __tablename__ = "berth_models"
    __table_args__ = (sa.UniqueConstraint("name", name="uq_berth_models_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(128))
    description: Mapped[str] = mapped_column(sa.Text, default="")
    last_version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class VersionRow(Base):
    """One immutable version: where its bundle lives, its content digest, and its lineage."""

    __tablename__ = "berth_versions"
    __table_args__ = (
        sa.UniqueConstraint("model_id", "version", name="uq_berth_versions_model_version"),
        sa.Index("ix_berth_versions_model_digest", "model_id", "digest"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("berth_models.id", ondelete="CASCADE"))
    version: Mapped[int]
    digest: Mapped[str] = mapped_column(sa.String(80))
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    flavor: Mapped[str] = mapped_column(sa.String(64))
    format: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    metrics: Mapped[dict[str, Any]]
    params: Mapped[dict[str, Any]]
    tags: Mapped[dict[str, Any]]
    manifest: Mapped[dict[str, Any]]  # the bundle's manifest without reference statistics, for diff
    data_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    git_commit: Mapped[str | None] = mapped_column(sa.String(64))
    created_by: Mapped[str] = mapped_column(sa.String(128))
    created_host: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime]


class AliasRow(Base):
    """A movable name for one version of a model (``production``, ``staging``)."""

    __tablename__ = "berth_aliases"

    model_id: Mapped[int] = mapped_column(sa.ForeignKey("berth_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("berth_versions.id"))
    updated_at: Mapped[datetime]


class RolloutRow(Base):
    """A candidate version beside the one an alias names: a canary share (percent) and/or a shadow share."""

    __tablename__ = "berth_rollouts"

    model_id: Mapped[int] = mapped_column(sa.ForeignKey("berth_models.id", ondelete="CASCADE"), primary_key=True)
    alias: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # the baseline's alias
    version_id: Mapped[int] = mapped_column(sa.ForeignKey("berth_versions.id"))  # the candidate
    canary_percent: Mapped[float] = mapped_column(sa.Float)
    shadow_share: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[datetime]


class AuditRow(Base):
    """One change: register, alias move, tag change, delete; with old and new value, who and when."""

    __tablename__ = "berth_audit"
    __table_args__ = (sa.Index("ix_berth_audit_model_id", "model_name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(sa.String(128))
    action: Mapped[str] = mapped_column(sa.String(32))
    version: Mapped[int | None]
    key: Mapped[str | None] = mapped_column(sa.String(128))
    old_value: Mapped[str | None] = mapped_column(sa.Text)
    new_value: Mapped[str | None] = mapped_column(sa.Text)
    user: Mapped[str] = mapped_column(sa.String(128))
    host: Mapped[str] = mapped_column(sa.String(255))
    at: Mapped[datetime]


class PendingRow(Base):
    """An artifact location not (or no longer) owned by a version: an upload in progress, or one to delete.

    A registration inserts its row before uploading and removes it in the transaction that commits the version,
    so a registration killed at any point leaves this row behind, and a later run deletes the artifact.
    """

    __tablename__ = "berth_pending"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(sa.String(128))
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    purpose: Mapped[str] = mapped_column(sa.String(16))  # "upload" or "delete"
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int]
    created_at: Mapped[datetime]
