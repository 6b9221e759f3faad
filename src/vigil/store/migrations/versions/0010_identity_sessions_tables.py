"""identity: refresh tokens, MFA, login attempts

Revision ID: 0010_identity_sessions
Revises: 0009_metering
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0010_identity_sessions"
down_revision: str | None = "0009_metering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
