"""Rollouts: a candidate version beside an alias's version, with a canary share and a shadow share.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "berth_rollouts",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("berth_models.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("berth_versions.id"), nullable=False),
        sa.Column("canary_percent", sa.Float, nullable=False),
        sa.Column("shadow_share", sa.Float, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("berth_rollouts")
