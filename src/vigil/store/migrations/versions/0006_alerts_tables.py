"""alerts: alerts, transitions, comments, event links

Revision ID: 0006_alerts
Revises: 0005_pipeline
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_alerts"
down_revision: str | None = "0005_pipeline"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("entity", sa.String(length=512), nullable=False),
        sa.Column("entity_fields", sa.JSON(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        _when("first_seen"),
        _when("last_seen"),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("acknowledged_at", nullable=True),
        _when("resolved_at", nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index(op.f("ix_alerts_fingerprint"), "alerts", ["fingerprint"])
    op.create_index(op.f("ix_alerts_tenant_id"), "alerts", ["tenant_id"])
    op.create_index("ix_alerts_tenant_last_seen", "alerts", ["tenant_id", "last_seen"])
    op.create_index("ix_alerts_tenant_status", "alerts", ["tenant_id", "status"])

    op.create_table(
        "alert_detections",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("detection_id", sa.String(length=200), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        _when("seen_at"),
        _when("recorded_at"),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_detections_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_detections")),
        sa.UniqueConstraint(
            "detection_id", "tenant_id", name=op.f("uq_alert_detections_detection_id")
        ),
    )
    op.create_index(op.f("ix_alert_detections_alert_id"), "alert_detections", ["alert_id"])
    op.create_index(op.f("ix_alert_detections_tenant_id"), "alert_detections", ["tenant_id"])

    op.create_table(
        "alert_transitions",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("from_value", sa.String(length=200), nullable=True),
        sa.Column("to_value", sa.String(length=200), nullable=True),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        _when("at"),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_transitions_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_transitions")),
    )
    op.create_index(op.f("ix_alert_transitions_alert_id"), "alert_transitions", ["alert_id"])
    op.create_index(op.f("ix_alert_transitions_tenant_id"), "alert_transitions", ["tenant_id"])

    op.create_table(
        "alert_comments",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("author", sa.String(length=255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        _when("created_at"),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_comments_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_comments")),
    )
    op.create_index(op.f("ix_alert_comments_alert_id"), "alert_comments", ["alert_id"])
    op.create_index(op.f("ix_alert_comments_tenant_id"), "alert_comments", ["tenant_id"])


def downgrade() -> None:
    for table in ("alert_comments", "alert_transitions", "alert_detections"):
        op.drop_index(op.f(f"ix_{table}_tenant_id"), table_name=table)
        op.drop_index(op.f(f"ix_{table}_alert_id"), table_name=table)
        op.drop_table(table)
    op.drop_index("ix_alerts_tenant_status", table_name="alerts")
    op.drop_index("ix_alerts_tenant_last_seen", table_name="alerts")
    op.drop_index(op.f("ix_alerts_tenant_id"), table_name="alerts")
    op.drop_index(op.f("ix_alerts_fingerprint"), table_name="alerts")
    op.drop_table("alerts")
