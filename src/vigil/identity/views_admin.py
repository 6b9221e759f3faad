"""HTTP routes that manage a tenant's identities: users, roles, API keys, tenant settings and
access rules. Every session is tenant-scoped: another tenant's objects answer 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.identity import apikeys, mfa, service, sessions
from vigil.identity.audit import IdentityAction, record
from vigil.identity.context import identity_of
from vigil.identity.invalidation import Invalidation
from vigil.identity.models import AccessRule, ApiKey, TotpEnrolment, User, UserStatus
from vigil.identity.principal import BUILTIN_ROLES, Permission, Principal
from vigil.identity.schemas import (
    AccessRuleCreate,
    AccessRuleRead,
    KeyCreate,
    KeyCreated,
    KeyPage,
    KeyRead,
    KeyRotate,
    PasswordReset,
    RoleCreate,
    RoleRead,
    TenantRead,
    TenantUpdate,
    UserCreate,
    UserPage,
    UserRead,
    UserUpdate,
)
from vigil.metering.service import QUOTA_METRICS

router = APIRouter(prefix="/v1")

Db = Annotated[Session, Depends(tenant_db)]
ManageUsers = Annotated[Principal, Depends(require(Permission.USERS_MANAGE))]
ManageKeys = Annotated[Principal, Depends(require(Permission.KEYS_MANAGE))]
ManageTenant = Annotated[Principal, Depends(require(Permission.TENANT_MANAGE))]


def _invalidate(request: Request, invalidation: Invalidation) -> None:
    identity_of(get_runtime(request)).invalidate(invalidation)


# --- users ---------------------------------------------------------------------------------------


def _user_reads(db: Session, users: list[User]) -> list[UserRead]:
    ids = [u.id for u in users]
    enrolled = (
        set(
            db.execute(
                select(TotpEnrolment.user_id).where(
                    TotpEnrolment.user_id.in_(ids), TotpEnrolment.confirmed_at.is_not(None)
                )
            ).scalars()
        )
        if ids
        else set()
    )
    out = []
    for u in users:
        read = UserRead.model_validate(u)
        read.mfa_enabled = u.id in enrolled
        out.append(read)
    return out


@router.get("/users", tags=["users"], summary="The tenant's users, by email")
def list_users(
    _p: ManageUsers,
    db: Db,
    status: UserStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=320, description="Last email seen.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> UserPage:
    users = service.list_users(db, status=status, after=cursor, limit=limit + 1)
    more = len(users) > limit
    users = users[:limit]
    return UserPage(items=_user_reads(db, users), next_cursor=users[-1].email if more else None)


@router.post("/users", tags=["users"], status_code=201, summary="Create a user")
def create_user(request: Request, body: UserCreate, principal: ManageUsers, db: Db) -> UserRead:
    user = service.create_user(
        db,
        tenant_id=principal.tenant_id,
        email=body.email,
        password=body.password,
        roles=body.roles,
        team=body.team,
        min_password_length=identity_of(get_runtime(request)).settings.password_min_length,
        granter=principal,
        actor=principal.actor,
    )
    db.commit()
    return _user_reads(db, [user])[0]


@router.get("/users/{user_id}", tags=["users"], summary="One user")
def get_user(user_id: str, _p: ManageUsers, db: Db) -> UserRead:
    return _user_reads(db, [service.get_user(db, user_id=user_id)])[0]


def _apply_user_update(
    request: Request, db: Session, principal: Principal, user: User, body: UserUpdate
) -> UserRead:
    service.update_user(
        db,
        user=user,
        roles=body.roles,
        status=body.status,
        team=body.team,
        granter=principal,
        actor=principal.actor,
    )
    ended: list[str] = []
    if body.status in (UserStatus.DISABLED, UserStatus.LOCKED):
        ended = sessions.revoke_user_sessions(db, user_id=user.id, reason="user_" + body.status)
    db.commit()
    _invalidate(request, Invalidation(user_ids=(user.id,), session_ids=tuple(ended)))
    return _user_reads(db, [user])[0]


@router.patch("/users/{user_id}", tags=["users"], summary="Change a user's roles, status or team")
def update_user(
    request: Request, user_id: str, body: UserUpdate, principal: ManageUsers, db: Db
) -> UserRead:
    user = service.get_user(db, user_id=user_id)
    return _apply_user_update(request, db, principal, user, body)


@router.post(
    "/users/{user_id}/disable", tags=["users"], summary="Disable a user (ends their sessions)"
)
def disable_user(request: Request, user_id: str, principal: ManageUsers, db: Db) -> UserRead:
    user = service.get_user(db, user_id=user_id)
    return _apply_user_update(request, db, principal, user, UserUpdate(status=UserStatus.DISABLED))


@router.post(
    "/users/{user_id}/unlock",
    tags=["users"],
    summary="Lift a lockout: clear failed logins and back-off; a locked user becomes active",
)
def unlock_user(user_id: str, principal: ManageUsers, db: Db) -> UserRead:
    user = service.get_user(db, user_id=user_id)
    sessions.unlock_user(db, user=user, actor=principal.actor)
    db.commit()
    return _user_reads(db, [user])[0]


@router.post(
    "/users/{user_id}/password",
    tags=["users"],
    summary="Set a user's password (ends their sessions)",
    status_code=204,
    response_class=Response,
)
def reset_password(
    request: Request, user_id: str, body: PasswordReset, principal: ManageUsers, db: Db
) -> Response:
    user = service.get_user(db, user_id=user_id)
    service.set_password(
        db,
        user=user,
        password=body.new_password,
        min_length=identity_of(get_runtime(request)).settings.password_min_length,
        actor=principal.actor,
    )
    ended = sessions.revoke_user_sessions(db, user_id=user.id, reason="password_reset")
    db.commit()
    _invalidate(request, Invalidation(user_ids=(user.id,), session_ids=tuple(ended)))
    return Response(status_code=204)


@router.delete(
    "/users/{user_id}/mfa",
    tags=["users"],
    summary="Remove a user's TOTP (lost authenticator)",
    status_code=204,
    response_class=Response,
)
def reset_mfa(user_id: str, principal: ManageUsers, db: Db) -> Response:
    user = service.get_user(db, user_id=user_id)
    mfa.disable(db, user=user, actor=principal.actor)
    db.commit()
    return Response(status_code=204)


# --- roles ---------------------------------------------------------------------------------------


@router.get("/roles", tags=["users"], summary="Built-in and custom roles with their permissions")
def list_roles(_p: ManageUsers, db: Db) -> list[RoleRead]:
    builtin = [
        RoleRead(
            id=None, name=name, description="built-in", permissions=sorted(perms), builtin=True
        )
        for name, perms in BUILTIN_ROLES.items()
    ]
    return builtin + [RoleRead.model_validate(r) for r in service.list_roles(db)]


@router.post("/roles", tags=["users"], status_code=201, summary="Create a custom role")
def create_role(body: RoleCreate, principal: ManageUsers, db: Db) -> RoleRead:
    role = service.create_role(
        db,
        tenant_id=principal.tenant_id,
        name=body.name,
        permissions=body.permissions,
        description=body.description,
        actor=principal,
    )
    db.commit()
    return RoleRead.model_validate(role)


@router.delete(
    "/roles/{role_id}",
    tags=["users"],
    status_code=204,
    response_class=Response,
    summary="Delete an unused custom role",
)
def delete_role(request: Request, role_id: str, principal: ManageUsers, db: Db) -> Response:
    service.delete_role(db, role=service.get_role(db, role_id=role_id), actor=principal)
    db.commit()
    _invalidate(request, Invalidation(tenant_ids=(principal.tenant_id,)))
    return Response(status_code=204)


# --- API keys ------------------------------------------------------------------------------------


@router.get("/keys", tags=["keys"], summary="The tenant's API keys (prefixes, never the keys)")
def list_keys(_p: ManageKeys, db: Db, include_revoked: bool = False) -> KeyPage:
    keys = apikeys.list_keys(db, include_revoked=include_revoked)
    return KeyPage(items=[KeyRead.model_validate(k) for k in keys])


def _created(new: apikeys.NewKey, response: Response) -> KeyCreated:
    response.headers["Cache-Control"] = "no-store"
    return KeyCreated(**KeyRead.model_validate(new.key).model_dump(), key=new.secret)


@router.post(
    "/keys", tags=["keys"], status_code=201, summary="Create an API key (the key is shown once)"
)
def create_key(body: KeyCreate, response: Response, principal: ManageKeys, db: Db) -> KeyCreated:
    owner = principal.attributes.get("user_id")
    roles = body.roles if body.roles is not None else sorted(principal.roles)
    expires_at = (
        datetime.now(UTC) + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    )
    new = apikeys.create_key(
        db,
        tenant_id=principal.tenant_id,
        name=body.name,
        roles=roles,
        scopes=body.scopes,
        user_id=str(owner) if owner else None,
        expires_at=expires_at,
        rate_limit_requests=body.rate_limit_requests,
        granter=principal,
        actor=principal.actor,
    )
    db.commit()
    return _created(new, response)


@router.get("/keys/{key_id}", tags=["keys"], summary="One API key")
def get_key(key_id: str, _p: ManageKeys, db: Db) -> KeyRead:
    return KeyRead.model_validate(apikeys.get_key(db, key_id=key_id))


@router.post(
    "/keys/{key_id}/rotate",
    tags=["keys"],
    status_code=201,
    summary="A new key replacing this one; the old one works for the grace period",
)
def rotate_key(
    request: Request,
    key_id: str,
    body: KeyRotate,
    response: Response,
    principal: ManageKeys,
    db: Db,
) -> KeyCreated:
    key = apikeys.get_key(db, key_id=key_id)
    grace = body.grace_s
    if grace is None:
        grace = identity_of(get_runtime(request)).settings.key_rotation_grace_s
    new = apikeys.rotate_key(db, key=key, grace_s=grace, actor=principal.actor)
    db.commit()
    _invalidate(request, Invalidation(key_ids=(key.id,)))
    return _created(new, response)


@router.delete(
    "/keys/{key_id}",
    tags=["keys"],
    status_code=204,
    response_class=Response,
    summary="Revoke an API key at once",
)
def revoke_key(request: Request, key_id: str, principal: ManageKeys, db: Db) -> Response:
    key: ApiKey = apikeys.get_key(db, key_id=key_id)
    apikeys.revoke_key(db, key=key, actor=principal.actor)
    db.commit()
    _invalidate(request, Invalidation(key_ids=(key.id,)))
    return Response(status_code=204)


# --- tenant settings and access rules -------------------------------------------------------------


@router.get("/tenant", tags=["tenant"], summary="The caller's tenant and its settings")
def get_tenant(principal: ManageTenant, db: Db) -> TenantRead:
    return TenantRead.model_validate(service.get_tenant(db, tenant_id=principal.tenant_id))


@router.patch("/tenant", tags=["tenant"], summary="Require MFA, set rate limits and daily quotas")
def update_tenant(
    request: Request, body: TenantUpdate, principal: ManageTenant, db: Db
) -> TenantRead:
    tenant = service.get_tenant(db, tenant_id=principal.tenant_id)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("require_mfa", False) is None:
        raise InvalidInputError("require_mfa is true or false", field="body.require_mfa")
    if "quotas" in changes and changes["quotas"] is None:
        changes["quotas"] = {}  # null: no quotas
    for name in changes.get("quotas") or {}:
        if name not in QUOTA_METRICS:
            raise InvalidInputError(
                f"no quota for {name!r}; known: {', '.join(QUOTA_METRICS)}",
                field=f"body.quotas.{name}",
            )
    service.update_tenant(db, tenant=tenant, changes=changes, actor=principal.actor)
    db.commit()
    _invalidate(request, Invalidation(tenant_ids=(tenant.id,)))
    return TenantRead.model_validate(tenant)


@router.get("/access-rules", tags=["tenant"], summary="Attribute-based allow/deny rules")
def list_access_rules(_p: ManageTenant, db: Db) -> list[AccessRuleRead]:
    rows = db.execute(select(AccessRule).order_by(AccessRule.priority, AccessRule.name)).scalars()
    return [AccessRuleRead.model_validate(r) for r in rows]


@router.post("/access-rules", tags=["tenant"], status_code=201, summary="Add an allow/deny rule")
def create_access_rule(
    request: Request, body: AccessRuleCreate, principal: ManageTenant, db: Db
) -> AccessRuleRead:
    if db.execute(select(AccessRule.id).where(AccessRule.name == body.name)).first():
        raise ConflictError(f"access rule {body.name!r} exists")
    rule = AccessRule(
        id=service.new_id(),
        tenant_id=principal.tenant_id,
        name=body.name,
        effect=body.effect,
        permissions=body.permissions,
        conditions=body.conditions.model_dump(mode="json", exclude_none=True),
        priority=body.priority,
        enabled=body.enabled,
        created_at=service.now(),
    )
    db.add(rule)
    db.flush()
    record(
        db,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=IdentityAction.ACCESS_RULE_CHANGED,
        target=f"access_rule:{rule.id}",
        change={"created": body.model_dump(mode="json")},
    )
    db.commit()
    _invalidate(request, Invalidation(tenant_ids=(principal.tenant_id,)))
    return AccessRuleRead.model_validate(rule)


@router.delete(
    "/access-rules/{rule_id}",
    tags=["tenant"],
    status_code=204,
    response_class=Response,
    summary="Remove a rule",
)
def delete_access_rule(request: Request, rule_id: str, principal: ManageTenant, db: Db) -> Response:
    rule = db.execute(select(AccessRule).where(AccessRule.id == rule_id)).scalar_one_or_none()
    if rule is None:
        raise NotFoundError("access rule not found")
    db.delete(rule)
    record(
        db,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=IdentityAction.ACCESS_RULE_CHANGED,
        target=f"access_rule:{rule.id}",
        change={"deleted": rule.name},
    )
    db.commit()
    _invalidate(request, Invalidation(tenant_ids=(principal.tenant_id,)))
    return Response(status_code=204)
