"""Password login (+ TOTP or a recovery code), refresh-token rotation with reuse detection, logout.

Every function runs in an unscoped session (the tenant is what the caller claims) and never
commits. Failures raise only after writing what must persist (throttle counters, audit entries):
the view commits before answering, whatever the outcome.

Refresh tokens are opaque (``vrt_`` + 256 random bits), stored as SHA-256, single use: each
refresh spends the presented token and returns a new one of the same family (login session).
Presenting a spent token again means it was stolen or replayed, so the whole family is revoked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from vigil.errors import AuthenticationError, RateLimitedError
from vigil.identity import mfa, throttle
from vigil.identity.audit import IdentityAction, record
from vigil.identity.authn import GENERIC_FAILURE, fail
from vigil.identity.config import IdentitySettings
from vigil.identity.credentials import (
    hash_password,
    new_opaque_token,
    password_needs_rehash,
    sha256_hex,
    verify_password,
)
from vigil.identity.models import AuthSession, RefreshToken, Tenant, User, UserStatus
from vigil.identity.service import as_utc, find_user, get_tenant_by_name, new_id, now
from vigil.identity.tokens import TokenSigner

REFRESH_PREFIX = "vrt_"


class MfaRequiredError(AuthenticationError):
    """The password was right; a TOTP code or recovery code must come with it."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    mfa_pending: bool


@dataclass(frozen=True, slots=True)
class LoginContext:
    settings: IdentitySettings
    signer: TokenSigner
    keys: mfa.MfaKeys
    client_address: str | None


def _policy(settings: IdentitySettings, *, address: bool) -> throttle.ThrottlePolicy:
    return throttle.ThrottlePolicy(
        threshold=settings.address_threshold if address else settings.lockout_threshold,
        base_s=settings.lockout_base_s,
        max_s=settings.lockout_max_s,
        window_s=settings.failure_window_s,
    )


def _issue(session: Session, *, auth: AuthSession, user_id: str, signer: TokenSigner) -> TokenPair:
    secret = REFRESH_PREFIX + new_opaque_token()
    session.add(
        RefreshToken(
            id=new_id(),
            tenant_id=auth.tenant_id,
            session_id=auth.id,
            token_hash=sha256_hex(secret),
            created_at=now(),
        )
    )
    access = signer.issue(user_id=user_id, tenant_id=auth.tenant_id, session_id=auth.id)
    return TokenPair(
        access_token=access,
        refresh_token=secret,
        expires_in=signer.ttl_s,
        session_id=auth.id,
        mfa_pending=auth.mfa_pending,
    )


@dataclass(frozen=True, slots=True)
class _Attempt:
    tenant: Tenant | None
    tenant_name: str
    email: str
    stamp: datetime


def _failed(
    session: Session, *, ctx: LoginContext, attempt: _Attempt, user: User | None, reason: str
) -> AuthenticationError:
    tenant, tenant_name, email, stamp = (
        attempt.tenant,
        attempt.tenant_name,
        attempt.email,
        attempt.stamp,
    )
    failures, until = throttle.record_failure(
        session,
        scope=throttle.account_scope(tenant_name, email),
        policy=_policy(ctx.settings, address=False),
        now=stamp,
    )
    throttle.record_failure(
        session,
        scope=throttle.address_scope(ctx.client_address),
        policy=_policy(ctx.settings, address=True),
        now=stamp,
    )
    if tenant is not None:
        target = f"user:{user.id}" if user is not None else f"email:{email.strip().lower()[:320]}"
        change = {"reason": reason, "failures": failures}
        record(
            session,
            tenant_id=tenant.id,
            actor="anonymous",
            action=IdentityAction.LOGIN_FAILED,
            target=target,
            change=change,
            client_address=ctx.client_address,
        )
        if until is not None:
            record(
                session,
                tenant_id=tenant.id,
                actor="system:identity",
                action=IdentityAction.LOCKOUT,
                target=target,
                change={"failures": failures, "locked_until": until.isoformat()},
                client_address=ctx.client_address,
            )
    if user is not None:
        user.failed_logins = failures
        if until is not None and user.status == UserStatus.ACTIVE:
            user.status = UserStatus.LOCKED
            user.locked_until = until
    return fail("login_" + reason)


def login(
    session: Session,
    *,
    tenant_name: str,
    email: str,
    password: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
    ctx: LoginContext,
) -> TokenPair:
    stamp = now()
    scopes = [
        throttle.account_scope(tenant_name, email),
        throttle.address_scope(ctx.client_address),
    ]
    wait = throttle.blocked_for(session, scopes=scopes, now=stamp)
    if wait > 0:
        raise RateLimitedError(
            "too many failed sign-in attempts; try again later", retry_after=math.ceil(wait)
        )
    tenant = get_tenant_by_name(session, name=tenant_name)
    user = find_user(session, tenant_id=tenant.id, email=email) if tenant is not None else None
    # verify_password spends the same work when there is no user (no timing oracle)
    password_ok = verify_password(user.password_hash if user else None, password)
    attempt = _Attempt(tenant=tenant, tenant_name=tenant_name, email=email, stamp=stamp)
    if not password_ok or user is None or tenant is None:
        raise _failed(session, ctx=ctx, user=user, reason="password", attempt=attempt)
    locked_until = as_utc(user.locked_until)
    if user.status == UserStatus.DISABLED or (
        user.status == UserStatus.LOCKED and (locked_until is None or locked_until > stamp)
    ):
        raise _failed(session, ctx=ctx, user=user, reason="inactive", attempt=attempt)
    enrolled = mfa.has_confirmed_totp(session, user=user)
    if enrolled:
        if totp_code:
            second_ok = mfa.verify_totp(session, user=user, keys=ctx.keys, code=totp_code)
        elif recovery_code:
            second_ok = mfa.use_recovery_code(session, user=user, keys=ctx.keys, code=recovery_code)
        else:
            raise MfaRequiredError("a second factor is required")
        if not second_ok:
            raise _failed(session, ctx=ctx, user=user, reason="second_factor", attempt=attempt)
    throttle.clear(session, scope=scopes[0])
    if password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.status = UserStatus.ACTIVE
    user.last_login_at = stamp
    auth = AuthSession(
        id=new_id(),
        tenant_id=user.tenant_id,
        user_id=user.id,
        created_at=stamp,
        expires_at=stamp + timedelta(seconds=ctx.settings.refresh_token_ttl_s),
        mfa_pending=tenant.require_mfa and not enrolled,
        client_address=ctx.client_address,
    )
    session.add(auth)
    record(
        session,
        tenant_id=user.tenant_id,
        actor=f"user:{user.id}",
        action=IdentityAction.LOGIN_SUCCEEDED,
        target=f"user:{user.id}",
        change={"session_id": auth.id, "mfa": enrolled, "mfa_pending": auth.mfa_pending},
        client_address=ctx.client_address,
    )
    return _issue(session, auth=auth, user_id=user.id, signer=ctx.signer)


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    pair: TokenPair | None
    revoked_session: str | None = None
    """Set when reuse revoked a family: publish the invalidation after committing."""


def refresh(session: Session, *, token: str, signer: TokenSigner) -> RefreshOutcome:
    """A new pair for a valid, unspent refresh token. On reuse the family is revoked and the
    outcome carries no pair (the caller commits, invalidates, then answers 401)."""
    if not token.startswith(REFRESH_PREFIX) or len(token) > 200:
        raise fail("refresh_malformed")
    row = session.execute(
        select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(token))
    ).scalar_one_or_none()
    if row is None:
        raise fail("refresh_unknown")
    auth = session.get(AuthSession, row.session_id)
    stamp = now()
    if auth is None or auth.revoked_at is not None:
        raise fail("refresh_revoked")
    expires = as_utc(auth.expires_at)
    if expires is not None and expires <= stamp:
        raise fail("refresh_expired")
    # Spend the token atomically: of two concurrent refreshes only one wins.
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=stamp)
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        auth.revoked_at = stamp
        auth.revoked_reason = "refresh_reuse"
        record(
            session,
            tenant_id=auth.tenant_id,
            actor="system:identity",
            action=IdentityAction.REFRESH_REUSED,
            target=f"session:{auth.id}",
            change={"user_id": auth.user_id},
        )
        return RefreshOutcome(pair=None, revoked_session=auth.id)
    user = session.get(User, auth.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        raise fail("refresh_user_inactive")
    return RefreshOutcome(pair=_issue(session, auth=auth, user_id=user.id, signer=signer))


def session_of_refresh_token(session: Session, *, token: str, user_id: str) -> str | None:
    """The login session a refresh token belongs to, if it is ``user_id``'s."""
    return session.execute(
        select(RefreshToken.session_id)
        .join(AuthSession, AuthSession.id == RefreshToken.session_id)
        .where(RefreshToken.token_hash == sha256_hex(token), AuthSession.user_id == user_id)
    ).scalar_one_or_none()


def revoke_session(session: Session, *, session_id: str, reason: str, actor: str) -> bool:
    auth = session.get(AuthSession, session_id)
    if auth is None or auth.revoked_at is not None:
        return False
    auth.revoked_at = now()
    auth.revoked_reason = reason
    record(
        session,
        tenant_id=auth.tenant_id,
        actor=actor,
        action=IdentityAction.LOGOUT,
        target=f"session:{auth.id}",
        change={"reason": reason},
    )
    return True


def revoke_user_sessions(
    session: Session, *, user_id: str, reason: str, keep: str | None = None
) -> list[str]:
    """End every open login of a user but ``keep`` (password change, disable); returns the
    session ids ended."""
    rows = session.execute(
        select(AuthSession).where(
            AuthSession.user_id == user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.id != (keep or ""),
        )
    ).scalars()
    ids = []
    stamp = now()
    for auth in rows:
        auth.revoked_at = stamp
        auth.revoked_reason = reason
        ids.append(auth.id)
    return ids


def unlock_user(session: Session, *, user: User, actor: str) -> User:
    """An administrator lifts a lockout: the account's failure count and sign-in back-off are
    cleared and a locked user is active again (a disabled one stays disabled). The source
    address's counter is left alone: it may be guessing at other accounts."""
    tenant = session.get(Tenant, user.tenant_id)
    if tenant is not None:
        throttle.clear(session, scope=throttle.account_scope(tenant.name, user.email))
    before = {"status": user.status, "failed_logins": user.failed_logins}
    user.failed_logins = 0
    user.locked_until = None
    if user.status == UserStatus.LOCKED:
        user.status = UserStatus.ACTIVE
    user.updated_at = now()
    record(
        session,
        tenant_id=user.tenant_id,
        actor=actor,
        action=IdentityAction.USER_UNLOCKED,
        target=f"user:{user.id}",
        change={"from": before, "to": {"status": user.status}},
    )
    return user


__all__ = [
    "GENERIC_FAILURE",
    "LoginContext",
    "MfaRequiredError",
    "RefreshOutcome",
    "TokenPair",
    "login",
    "refresh",
    "revoke_session",
    "revoke_user_sessions",
    "unlock_user",
]
