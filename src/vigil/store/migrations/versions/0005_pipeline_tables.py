"""pipeline: per-tenant rule state, detections

Revision ID: 0005_pipeline
Revises: 0004_queue
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005_pipeline"
down_revision: str | None = "0004_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
