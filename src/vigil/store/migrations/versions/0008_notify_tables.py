"""notify: channels, routes, deliveries, dead letters

Revision ID: 0008_notify
Revises: 0007_incidents
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008_notify"
down_revision: str | None = "0007_incidents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
