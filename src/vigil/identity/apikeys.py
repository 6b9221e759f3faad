"""API keys: create (the secret is returned once), list, rotate with a grace period, revoke,
and the look-up authentication uses. Keyword-only functions; the caller commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.errors import InvalidInputError, InvalidTransitionError, NotFoundError
from vigil.identity.audit import IdentityAction, record
from vigil.identity.credentials import display_prefix, new_api_key, sha256_hex
from vigil.identity.models import ApiKey, Tenant, User, UserStatus
from vigil.identity.principal import Principal
from vigil.identity.service import (
    as_utc,
    check_permissions,
    check_roles,
    new_id,
    now,
    role_permissions,
)


@dataclass(frozen=True, slots=True)
class NewKey:
    key: ApiKey
    secret: str
    """The key text: shown to the caller once, never stored."""


def create_key(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    roles: Sequence[str],
    scopes: Sequence[str] | None = None,
    user_id: str | None = None,
    expires_at: datetime | None = None,
    rate_limit_requests: int | None = None,
    granter: Principal | None,
    actor: str,
) -> NewKey:
    """A key acting with ``roles`` (narrowed to ``scopes`` when given). ``granter`` None: the
    admin CLI; otherwise the roles must be within the granter's permissions."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidInputError("key names are 1-100 characters", field="body.name")
    role_names = check_roles(session, tenant_id=tenant_id, roles=roles, granter=granter)
    if not role_names:
        raise InvalidInputError("a key needs at least one role", field="body.roles")
    scope_list = None
    if scopes is not None:
        scope_list = check_permissions(scopes, field="body.scopes")
        held = role_permissions(session, tenant_id=tenant_id, roles=role_names)
        outside = set(scope_list) - held
        if outside:
            raise InvalidInputError(
                "scopes must be a subset of the key's role permissions; not held: "
                + ", ".join(sorted(outside)),
                field="body.scopes",
            )
    stamp = now()
    if expires_at is not None and as_utc(expires_at) <= stamp:  # type: ignore[operator]
        raise InvalidInputError("expiry must be in the future", field="body.expires_at")
    secret = new_api_key()
    key = ApiKey(
        id=new_id(),
        tenant_id=tenant_id,
        name=name,
        prefix=display_prefix(secret),
        secret_hash=sha256_hex(secret),
        user_id=user_id,
        roles=role_names,
        scopes=scope_list,
        rate_limit_requests=rate_limit_requests,
        created_at=stamp,
        created_by=actor,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=IdentityAction.KEY_CREATED,
        target=f"key:{key.id}",
        change={
            "name": name,
            "prefix": key.prefix,
            "roles": role_names,
            "scopes": scope_list,
            "user_id": user_id,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return NewKey(key=key, secret=secret)


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.execute(query).scalars())


def get_key(session: Session, *, key_id: str) -> ApiKey:
    key = session.execute(select(ApiKey).where(ApiKey.id == key_id)).scalar_one_or_none()
    if key is None:
        raise NotFoundError("API key not found")
    return key


def revoke_key(session: Session, *, key: ApiKey, actor: str) -> ApiKey:
    if key.revoked_at is not None:
        return key
    key.revoked_at = now()
    record(
        session,
        tenant_id=key.tenant_id,
        actor=actor,
        action=IdentityAction.KEY_REVOKED,
        target=f"key:{key.id}",
        change={"prefix": key.prefix},
    )
    return key


def rotate_key(session: Session, *, key: ApiKey, grace_s: int, actor: str) -> NewKey:
    """A new key with the same roles, scopes and owner; the old one keeps working for
    ``grace_s`` seconds (0: stops at once)."""
    stamp = now()
    if key.revoked_at is not None:
        raise InvalidTransitionError("a revoked key cannot be rotated")
    if key.replaced_by is not None:
        raise InvalidTransitionError("this key was already rotated")
    expires = as_utc(key.expires_at)
    if expires is not None and expires <= stamp:
        raise InvalidTransitionError("an expired key cannot be rotated")
    new = create_key(
        session,
        tenant_id=key.tenant_id,
        name=key.name,
        roles=key.roles,
        scopes=key.scopes,
        user_id=key.user_id,
        expires_at=expires,
        rate_limit_requests=key.rate_limit_requests,
        granter=None,  # the same rights the key already had
        actor=actor,
    )
    grace_end = stamp + timedelta(seconds=grace_s)
    key.expires_at = min(expires, grace_end) if expires is not None else grace_end
    key.replaced_by = new.key.id
    record(
        session,
        tenant_id=key.tenant_id,
        actor=actor,
        action=IdentityAction.KEY_ROTATED,
        target=f"key:{key.id}",
        change={"replaced_by": new.key.id, "old_key_expires_at": key.expires_at.isoformat()},
    )
    return new


# --- authentication look-up -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    principal: Principal
    expires_at: datetime | None
    rate_limit_requests: int | None


def verify_key(session: Session, *, secret: str, touch_after_s: float = 60.0) -> VerifiedKey | None:
    """The key's principal, or None when it does not exist, is revoked or expired, or its
    owner is not active. Runs in an unscoped session (the tenant is what we are finding out).
    Updates ``last_used_at`` at most every ``touch_after_s`` seconds (keys are cached)."""
    row = session.execute(
        select(ApiKey, Tenant)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.secret_hash == sha256_hex(secret))
    ).first()
    if row is None:
        return None
    key, tenant = row
    stamp = now()
    expires = as_utc(key.expires_at)
    if key.revoked_at is not None or (expires is not None and expires <= stamp):
        return None
    permissions = role_permissions(session, tenant_id=key.tenant_id, roles=key.roles)
    if key.scopes is not None:
        permissions &= frozenset(key.scopes)
    attributes: dict[str, object] = {"key_id": key.id, "key_name": key.name}
    if key.user_id is not None:
        owner = session.get(User, key.user_id)
        if owner is None or owner.status != UserStatus.ACTIVE:
            return None
        # A key never exceeds its owner's current rights.
        permissions &= role_permissions(session, tenant_id=key.tenant_id, roles=owner.roles)
        attributes.update(user_id=owner.id, email=owner.email, team=owner.team)
    last = as_utc(key.last_used_at)
    if last is None or (stamp - last).total_seconds() >= touch_after_s:
        key.last_used_at = stamp
    principal = Principal(
        tenant_id=key.tenant_id,
        subject_id=key.id,
        kind="key",
        roles=frozenset(key.roles),
        permissions=permissions,
        attributes={
            **attributes,
            "tenant_name": tenant.name,
            "rate_limit_requests": key.rate_limit_requests or tenant.rate_limit_requests,
            "rate_limit_window_s": tenant.rate_limit_window_s,
        },
    )
    return VerifiedKey(
        principal=principal, expires_at=expires, rate_limit_requests=key.rate_limit_requests
    )
