"""pipeline: correlation inputs and per-partition correlation state

Revision ID: 0012_pipeline_correlation
Revises: 0011_identity_epoch
Create Date: 2026-11-22 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_pipeline_correlation"
down_revision: str | None = "0011_identity_epoch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "correlation_inputs",
        sa.Column("seq", _seq, autoincrement=True, nullable=False),
        sa.Column("partition_no", sa.Integer(), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("input_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_correlation_inputs")),
        sa.UniqueConstraint("input_id", "family", name=op.f("uq_correlation_inputs_input_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_correlation_inputs_partition_seq", "correlation_inputs", ["partition_no", "seq"]
    )
    op.create_table(
        "correlation_state",
        sa.Column("partition_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("partitions", sa.Integer(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("snapshot", sa.LargeBinary(), nullable=True),
        sa.Column("snapshot_position", sa.BigInteger(), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("partition_no", name=op.f("pk_correlation_state")),
    )


def downgrade() -> None:
    op.drop_table("correlation_state")
    op.drop_index("ix_correlation_inputs_partition_seq", table_name="correlation_inputs")
    op.drop_table("correlation_inputs")
