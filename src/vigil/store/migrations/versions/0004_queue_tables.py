"""queue: the durable ingest queue

Revision ID: 0004_queue
Revises: 0003_bus
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0004_queue"
down_revision: str | None = "0003_bus"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
