"""queue: the durable ingest queue

Revision ID: 0004_queue
Revises: 0003_bus
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_queue"
down_revision: str | None = "0003_bus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "event_queue",
        sa.Column("seq", _seq, autoincrement=True, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_event_queue")),
        sa.UniqueConstraint("tenant_id", "event_id", name=op.f("uq_event_queue_tenant_id")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_event_queue_accepted_at", "event_queue", ["accepted_at"])


def downgrade() -> None:
    op.drop_index("ix_event_queue_accepted_at", table_name="event_queue")
    op.drop_table("event_queue")
