"""identity: the revocation epoch (one counter row serving processes poll to flush caches)

Revision ID: 0011_identity_epoch
Revises: 0010_identity_sessions
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0011_identity_epoch"
down_revision: str | None = "0010_identity_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "identity_epoch",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_epoch")),
    )
    # The one row every revocation moves (vigil.identity.revocations.EPOCH_ROW).
    op.bulk_insert(table, [{"id": 1, "epoch": 0, "changed_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("identity_epoch")
