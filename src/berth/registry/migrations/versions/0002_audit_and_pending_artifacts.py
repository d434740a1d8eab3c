"""The audit log, and pending artifacts (uploads in progress or awaiting deletion) for crash cleanup.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "berth_audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("key", sa.String(128), nullable=True),
        sa.Column("old_value", sa.Text, nullable=True),
        sa.Column("new_value", sa.Text, nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_index("ix_berth_audit_model_id", "berth_audit", ["model_name", "id"])
    op.create_table(
        "berth_pending",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    # Versions registered before the audit log existed get a "register" event, so every version has one.
    op.execute(
        "INSERT INTO berth_audit (model_name, action, version, new_value, \"user\", host, at) "
        "SELECT m.name, 'register', v.version, v.digest, v.created_by, v.created_host, v.created_at "
        "FROM berth_versions v JOIN berth_models m ON m.id = v.model_id ORDER BY v.created_at, v.id"
    )


def downgrade() -> None:
    op.drop_table("berth_pending")
    op.drop_index("ix_berth_audit_model_id", table_name="berth_audit")
    op.drop_table("berth_audit")
