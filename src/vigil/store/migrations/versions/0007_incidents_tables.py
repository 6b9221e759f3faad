"""incidents: incidents, timeline, SLA, escalation

Revision ID: 0007_incidents
Revises: 0006_alerts
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_incidents"
down_revision: str | None = "0006_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _tenant() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("tenant_id", sa.String(length=36), nullable=False)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("severity_rank", sa.SmallInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("entity", sa.String(length=512), nullable=False),
        sa.Column("entity_key", sa.String(length=600), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("opened_by", sa.String(length=255), nullable=False),
        _when("opened_at"),
        _when("updated_at"),
        _when("last_alert_at"),
        _when("acknowledged_at", nullable=True),
        _when("resolved_at", nullable=True),
        _when("closed_at", nullable=True),
        _when("ack_due_at"),
        _when("resolve_due_at"),
        sa.Column("ack_breached", sa.Boolean(), nullable=False),
        sa.Column("resolve_breached", sa.Boolean(), nullable=False),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("lessons_learned", sa.Text(), nullable=True),
        sa.Column("follow_ups", sa.JSON(), nullable=False),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index(op.f("ix_incidents_status"), "incidents", ["status"])
    op.create_index(op.f("ix_incidents_tenant_id"), "incidents", ["tenant_id"])
    op.create_index("ix_incidents_tenant_entity_key", "incidents", ["tenant_id", "entity_key"])
    op.create_index(
        "ix_incidents_tenant_correlation_id", "incidents", ["tenant_id", "correlation_id"]
    )
    op.create_index("ix_incidents_tenant_opened_at", "incidents", ["tenant_id", "opened_at"])

    op.create_table(
        "incident_alerts",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        _when("added_at"),
        sa.Column("added_by", sa.String(length=255), nullable=False),
        _tenant(),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_incident_alerts_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_alerts_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_alerts")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_incident_alerts_alert_id")),
    )
    op.create_index(op.f("ix_incident_alerts_incident_id"), "incident_alerts", ["incident_id"])
    op.create_index(op.f("ix_incident_alerts_tenant_id"), "incident_alerts", ["tenant_id"])

    op.create_table(
        "incident_timeline",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        _when("at"),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("summary", sa.String(length=1000), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        _tenant(),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incidents.id"],
            name=op.f("fk_incident_timeline_incident_id_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
    )
    op.create_index(op.f("ix_incident_timeline_incident_id"), "incident_timeline", ["incident_id"])
    op.create_index(op.f("ix_incident_timeline_tenant_id"), "incident_timeline", ["tenant_id"])

    op.create_table(
        "escalation_policies",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("applies_to", sa.String(length=16), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("levels", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        sa.Column("updated_by", sa.String(length=255), nullable=False),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_policies")),
        sa.UniqueConstraint("tenant_id", "severity", name=op.f("uq_escalation_policies_tenant_id")),
    )
    op.create_index(op.f("ix_escalation_policies_tenant_id"), "escalation_policies", ["tenant_id"])

    op.create_table(
        "escalation_steps",
        sa.Column("id", _id, autoincrement=True, nullable=False),
        sa.Column("target_kind", sa.String(length=16), nullable=False),
        sa.Column("target_id", sa.String(length=36), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=36), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        _when("due_at"),
        _when("fired_at"),
        _tenant(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_steps")),
        sa.UniqueConstraint(
            "target_kind", "target_id", "level", name=op.f("uq_escalation_steps_target_kind")
        ),
    )
    op.create_index(op.f("ix_escalation_steps_tenant_id"), "escalation_steps", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_escalation_steps_tenant_id"), table_name="escalation_steps")
    op.drop_table("escalation_steps")
    op.drop_index(op.f("ix_escalation_policies_tenant_id"), table_name="escalation_policies")
    op.drop_table("escalation_policies")
    op.drop_index(op.f("ix_incident_timeline_tenant_id"), table_name="incident_timeline")
    op.drop_index(op.f("ix_incident_timeline_incident_id"), table_name="incident_timeline")
    op.drop_table("incident_timeline")
    op.drop_index(op.f("ix_incident_alerts_tenant_id"), table_name="incident_alerts")
    op.drop_index(op.f("ix_incident_alerts_incident_id"), table_name="incident_alerts")
    op.drop_table("incident_alerts")
    op.drop_index("ix_incidents_tenant_opened_at", table_name="incidents")
    op.drop_index("ix_incidents_tenant_correlation_id", table_name="incidents")
    op.drop_index("ix_incidents_tenant_entity_key", table_name="incidents")
    op.drop_index(op.f("ix_incidents_tenant_id"), table_name="incidents")
    op.drop_index(op.f("ix_incidents_status"), table_name="incidents")
    op.drop_table("incidents")
