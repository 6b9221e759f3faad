"""identity: sessions and refresh tokens, MFA, login throttles, access rules

Revision ID: 0010_identity_sessions
Revises: 0009_metering
Create Date: 2026-11-21 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_identity_sessions"
down_revision: str | None = "0009_metering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ts = sa.DateTime(timezone=True)


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("expires_at", _ts, nullable=False),
        sa.Column("revoked_at", _ts, nullable=True),
        sa.Column("revoked_reason", sa.String(length=32), nullable=True),
        sa.Column("mfa_pending", sa.Boolean(), nullable=False),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        _user_fk("auth_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_sessions")),
    )
    op.create_index(op.f("ix_auth_sessions_tenant_id"), "auth_sessions", ["tenant_id"])
    op.create_index(op.f("ix_auth_sessions_user_id"), "auth_sessions", ["user_id"])
    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("used_at", _ts, nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["auth_sessions.id"],
            name=op.f("fk_refresh_tokens_session_id_auth_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_refresh_tokens_tenant_id"), "refresh_tokens", ["tenant_id"])
    op.create_index(op.f("ix_refresh_tokens_session_id"), "refresh_tokens", ["session_id"])
    op.create_table(
        "totp_enrolments",
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("confirmed_at", _ts, nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        _user_fk("totp_enrolments"),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_totp_enrolments")),
    )
    op.create_index(op.f("ix_totp_enrolments_tenant_id"), "totp_enrolments", ["tenant_id"])
    op.create_table(
        "recovery_codes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("used_at", _ts, nullable=True),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        _user_fk("recovery_codes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_codes")),
    )
    op.create_index(op.f("ix_recovery_codes_tenant_id"), "recovery_codes", ["tenant_id"])
    op.create_index(op.f("ix_recovery_codes_user_id"), "recovery_codes", ["user_id"])
    op.create_table(
        "login_throttles",
        sa.Column("scope", sa.String(length=450), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _ts, nullable=False),
        sa.Column("blocked_until", _ts, nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_login_throttles")),
    )
    op.create_table(
        "access_rules",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("effect", sa.String(length=8), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts, nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_rules")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_access_rules_tenant_id")),
    )
    op.create_index(op.f("ix_access_rules_tenant_id"), "access_rules", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_access_rules_tenant_id"), table_name="access_rules")
    op.drop_table("access_rules")
    op.drop_table("login_throttles")
    op.drop_index(op.f("ix_recovery_codes_user_id"), table_name="recovery_codes")
    op.drop_index(op.f("ix_recovery_codes_tenant_id"), table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_index(op.f("ix_totp_enrolments_tenant_id"), table_name="totp_enrolments")
    op.drop_table("totp_enrolments")
    op.drop_index(op.f("ix_refresh_tokens_session_id"), table_name="refresh_tokens")
    op.drop_index(op.f("ix_refresh_tokens_tenant_id"), table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_index(op.f("ix_auth_sessions_user_id"), table_name="auth_sessions")
    op.drop_index(op.f("ix_auth_sessions_tenant_id"), table_name="auth_sessions")
    op.drop_table("auth_sessions")
