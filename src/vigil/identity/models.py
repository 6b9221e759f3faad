"""Tables of the identity domain.

Migration 0002: tenants, users, custom roles, API keys.
Migration 0010: sessions and refresh tokens, TOTP enrolments and recovery codes, login throttles,
attribute-based access rules.
Migration 0011: the revocation epoch (one row; see :mod:`vigil.identity.revocations`).

Secrets are never stored: API keys and refresh tokens as SHA-256 of the (high-entropy) secret,
passwords as argon2id, recovery codes as HMAC-SHA-256 with the install's pepper, TOTP seeds
encrypted with AES-GCM under a key derived from the install secret.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    LOCKED = "locked"


class Tenant(Base):
    """An organisation. Not tenant-scoped itself: only admin tooling and authentication read it
    across tenants (through a system session)."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    require_mfa: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    rate_limit_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rate_limit_window_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: metric → allowed amount per UTC day, e.g. {"events": 5000000}
    quotas: Mapped[dict[str, int]] = mapped_column(JSON, nullable=False, default=dict)


class User(TenantScoped, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=UserStatus.ACTIVE)
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    team: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Role(TenantScoped, Base):
    """A custom role: a named set of permissions, per tenant (built-in names are reserved)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    permissions: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ApiKey(TenantScoped, Base):
    """An API key. ``secret_hash`` is SHA-256 of the whole key text; ``prefix`` is shown in
    lists so people can tell keys apart."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    #: The user the key acts for (its permissions never exceed theirs); None for service keys
    #: created from the CLI with a role.
    user_id: Mapped[str | None] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True
    )
    roles: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    #: None: every permission of the roles; otherwise a subset of them.
    scopes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    rate_limit_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(100), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Set on the old key when it was rotated: the key that replaces it.
    replaced_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


# --- migration 0010 -------------------------------------------------------------------------------


class AuthSession(TenantScoped, Base):
    """One login: the family of refresh tokens it produced, and the ``sid`` of its access
    tokens. Revoking it ends every token of the family at once."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The session was opened without the second factor the tenant requires: it may only enrol.
    mfa_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class RefreshToken(TenantScoped, Base):
    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("auth_sessions.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class TotpEnrolment(TenantScoped, Base):
    __tablename__ = "totp_enrolments"

    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    confirmed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The last TOTP time step accepted: a code is usable once per step (no replay).
    last_step: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)


class RecoveryCode(TenantScoped, Base):
    __tablename__ = "recovery_codes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginThrottle(Base):
    """Failed logins per scope (``acct:<tenant>:<email>`` or ``addr:<ip>``), shared by replicas.

    Keyed by what the caller typed, so unknown accounts back off exactly like real ones (no user
    enumeration through lockout behaviour)."""

    __tablename__ = "login_throttles"

    scope: Mapped[str] = mapped_column(String(450), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AccessRule(TenantScoped, Base):
    """An attribute-based allow/deny rule evaluated by the policy decision point."""

    __tablename__ = "access_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    effect: Mapped[str] = mapped_column(String(8), nullable=False)
    #: fnmatch patterns over permissions, e.g. ["alerts:*"]
    permissions: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    #: {"subject": {...}, "resource": {...}, "environment": {...}}: see vigil.identity.policy
    conditions: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class IdentityEpoch(Base):
    """One row (``id`` 1): a counter every credential-revoking transaction moves, so serving
    processes notice revocations made elsewhere (the CLI) with one cheap look-up a second."""

    __tablename__ = "identity_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
