"""pipeline: per-tenant rule state, detections

Revision ID: 0005_pipeline
Revises: 0004_queue
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_pipeline"
down_revision: str | None = "0004_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "detections",
        sa.Column("detection_id", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("rule_title", sa.String(length=500), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), nullable=True),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("detection_id", name=op.f("pk_detections")),
    )
    op.create_index(op.f("ix_detections_tenant_id"), "detections", ["tenant_id"])
    op.create_index("ix_detections_tenant_detected", "detections", ["tenant_id", "detected_at"])
    op.create_table(
        "rule_settings",
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("suppression_window_s", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "rule_id", name=op.f("pk_rule_settings")),
    )
    op.create_index(op.f("ix_rule_settings_tenant_id"), "rule_settings", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rule_settings_tenant_id"), table_name="rule_settings")
    op.drop_table("rule_settings")
    op.drop_index("ix_detections_tenant_detected", table_name="detections")
    op.drop_index(op.f("ix_detections_tenant_id"), table_name="detections")
    op.drop_table("detections")
