"""metering: usage counters (per tenant, metric, dimension and hour)

Revision ID: 0009_metering
Revises: 0008_notify
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_metering"
down_revision: str | None = "0008_notify"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_counters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("dimension", sa.String(length=200), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_counters")),
        sa.UniqueConstraint(
            "tenant_id", "metric", "dimension", "hour", name=op.f("uq_usage_counters_tenant_id")
        ),
    )
    op.create_index(op.f("ix_usage_counters_tenant_id"), "usage_counters", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_counters_tenant_id"), table_name="usage_counters")
    op.drop_table("usage_counters")
