"""Registered models, their immutable versions, and aliases.

Revision ID: 0001
Revises:
Create Date: 2025-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "berth_models",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("name", name="uq_berth_models_name"),
    )
    op.create_table(
        "berth_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("berth_models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("flavor", sa.String(64), nullable=False),
        sa.Column("format", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("data_fingerprint", sa.String(128), nullable=True),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_host", sa.String(255), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_berth_versions_model_version"),
    )
    op.create_index("ix_berth_versions_model_digest", "berth_versions", ["model_id", "digest"])
    op.create_table(
        "berth_aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("berth_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("berth_versions.id"), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("berth_aliases")
    op.drop_index("ix_berth_versions_model_digest", table_name="berth_versions")
    op.drop_table("berth_versions")
    op.drop_table("berth_models")
