"""Tenants, users and custom roles (keyword-only functions; the caller's session, no commit).

Tenant-owned reads rely on the session's tenant scope (:mod:`vigil.store.tenancy`); the few
functions that must work across tenants (authentication, the admin CLI) say so and take the
tenant id explicitly.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from vigil.identity.audit import IdentityAction, record
from vigil.identity.credentials import hash_password
from vigil.identity.models import Role, Tenant, User, UserStatus
from vigil.identity.principal import ALL_PERMISSIONS, BUILTIN_ROLES, Principal

#: What an email address and a custom role's name look like (published in the API schema).
# Whitespace spelled out: Python's and ECMAScript's ``\s`` differ (\x1c-\x1f, \x85, \ufeff), and
# clients validate the published pattern with the latter.
_SPACE = r"\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
EMAIL_PATTERN = rf"^[^@{_SPACE}]{{1,64}}@[^@{_SPACE}]{{1,255}}\.[^@{_SPACE}.]{{1,63}}$"
ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
#: Names a custom role cannot take.
RESERVED_ROLE_NAMES = frozenset({*BUILTIN_ROLES, "system"})
_EMAIL = re.compile(EMAIL_PATTERN)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_ROLE_NAME = re.compile(ROLE_NAME_PATTERN)


def now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# --- tenants --------------------------------------------------------------------------------------


def check_tenant_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(
            "tenant names are 1-100 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit",
            field="tenant",
        )
    return name


def create_tenant(session: Session, *, name: str, actor: str) -> Tenant:
    check_tenant_name(name)
    if get_tenant_by_name(session, name=name) is not None:
        raise ConflictError(f"tenant {name!r} exists")
    tenant = Tenant(
        id=new_id(),
        name=name,
        created_at=now(),
        require_mfa=False,
        quotas={},
    )
    session.add(tenant)
    session.flush()
    record(
        session,
        tenant_id=tenant.id,
        actor=actor,
        action=IdentityAction.TENANT_CREATED,
        target=f"tenant:{tenant.id}",
        change={"name": name},
    )
    return tenant


def get_tenant_by_name(session: Session, *, name: str) -> Tenant | None:
    return session.execute(select(Tenant).where(Tenant.name == name)).scalar_one_or_none()


def get_tenant(session: Session, *, tenant_id: str) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFoundError("tenant not found")
    return tenant


def update_tenant(
    session: Session, *, tenant: Tenant, changes: dict[str, Any], actor: str
) -> Tenant:
    """``changes``: any of require_mfa, rate_limit_requests, rate_limit_window_s, quotas."""
    allowed = {"require_mfa", "rate_limit_requests", "rate_limit_window_s", "quotas"}
    for key, value in changes.items():
        if key not in allowed:
            raise InvalidInputError(f"unknown tenant setting {key}", field=f"body.{key}")
        setattr(tenant, key, value)
    record(
        session,
        tenant_id=tenant.id,
        actor=actor,
        action=IdentityAction.TENANT_UPDATED,
        target=f"tenant:{tenant.id}",
        change=changes,
    )
    return tenant


# --- roles and permissions ------------------------------------------------------------------------


def custom_roles(session: Session, *, tenant_id: str, names: Iterable[str]) -> dict[str, Role]:
    """Custom roles by name. Filters by tenant explicitly: authentication calls this from an
    unscoped session."""
    wanted = [n for n in names if n not in BUILTIN_ROLES]
    if not wanted:
        return {}
    rows = session.execute(
        select(Role).where(Role.tenant_id == tenant_id, Role.name.in_(wanted))
    ).scalars()
    return {r.name: r for r in rows}


def role_permissions(session: Session, *, tenant_id: str, roles: Iterable[str]) -> frozenset[str]:
    """The union of the roles' permissions (unknown roles grant nothing)."""
    names = list(roles)
    perms: set[str] = set()
    for name in names:
        perms |= BUILTIN_ROLES.get(name, frozenset())
    for role in custom_roles(session, tenant_id=tenant_id, names=names).values():
        perms |= set(role.permissions) & ALL_PERMISSIONS
    return frozenset(perms)


def check_roles(
    session: Session, *, tenant_id: str, roles: Sequence[str], granter: Principal | None
) -> list[str]:
    """Validate role names; a granter may only hand out roles within their own permissions
    (no privilege escalation through user or key management)."""
    unique = sorted(set(roles))
    known = custom_roles(session, tenant_id=tenant_id, names=unique)
    for i, name in enumerate(unique):
        if name not in BUILTIN_ROLES and name not in known:
            raise InvalidInputError(f"unknown role {name!r}", field=f"body.roles[{i}]")
        if name == "system":
            raise InvalidInputError("the system role cannot be assigned", field="body.roles")
    if granter is not None:
        granted = role_permissions(session, tenant_id=tenant_id, roles=unique)
        missing = granted - granter.permissions
        if missing:
            raise PermissionDeniedError(
                "cannot grant permissions you do not hold: " + ", ".join(sorted(missing))
            )
    return unique


def check_permissions(perms: Sequence[str], *, field: str) -> list[str]:
    unique = sorted(set(perms))
    for i, perm in enumerate(unique):
        if perm not in ALL_PERMISSIONS:
            raise InvalidInputError(f"unknown permission {perm!r}", field=f"{field}[{i}]")
    return unique


def list_roles(session: Session) -> list[Role]:
    return list(session.execute(select(Role).order_by(Role.name)).scalars())


def get_role(session: Session, *, role_id: str) -> Role:
    role = session.execute(select(Role).where(Role.id == role_id)).scalar_one_or_none()
    if role is None:
        raise NotFoundError("role not found")
    return role


def create_role(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    permissions: Sequence[str],
    description: str,
    actor: Principal,
) -> Role:
    if not _ROLE_NAME.match(name) or name in RESERVED_ROLE_NAMES:
        raise InvalidInputError(
            "role names are lower-case letters, digits, '_' or '-' and not a built-in role",
            field="body.name",
        )
    perms = check_permissions(permissions, field="body.permissions")
    missing = set(perms) - actor.permissions
    if missing:
        raise PermissionDeniedError(
            "cannot grant permissions you do not hold: " + ", ".join(sorted(missing))
        )
    if custom_roles(session, tenant_id=tenant_id, names=[name]):
        raise ConflictError(f"role {name!r} exists")
    role = Role(
        id=new_id(),
        tenant_id=tenant_id,
        name=name,
        description=description,
        permissions=perms,
        created_at=now(),
    )
    session.add(role)
    session.flush()
    record(
        session,
        tenant_id=tenant_id,
        actor=actor.actor,
        action=IdentityAction.ROLE_CREATED,
        target=f"role:{role.id}",
        change={"name": name, "permissions": perms},
    )
    return role


def delete_role(session: Session, *, role: Role, actor: Principal) -> None:
    in_use = session.execute(select(User.id, User.roles)).all()
    if any(role.name in (roles or []) for _id, roles in in_use):
        raise ConflictError(f"role {role.name!r} is assigned to users")
    session.delete(role)
    record(
        session,
        tenant_id=role.tenant_id,
        actor=actor.actor,
        action=IdentityAction.ROLE_DELETED,
        target=f"role:{role.id}",
        change={"name": role.name},
    )


# --- users ----------------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    if not _EMAIL.match(value):
        raise InvalidInputError("not an email address", field="body.email")
    return value


def check_password(password: str, *, min_length: int, field: str = "body.password") -> None:
    if len(password) < min_length:
        raise InvalidInputError(f"passwords have at least {min_length} characters", field=field)
    if len(password) > 1024:
        raise InvalidInputError("passwords have at most 1024 characters", field=field)


def create_user(
    session: Session,
    *,
    tenant_id: str,
    email: str,
    password: str,
    roles: Sequence[str],
    team: str | None = None,
    min_password_length: int = 12,
    granter: Principal | None,
    actor: str,
) -> User:
    """``granter`` None: the admin CLI (trusted); otherwise roles must be within its rights."""
    address = normalise_email(email)
    check_password(password, min_length=min_password_length)
    role_names = check_roles(session, tenant_id=tenant_id, roles=roles, granter=granter)
    stamp = now()
    user = User(
        id=new_id(),
        tenant_id=tenant_id,
        email=address,
        password_hash=hash_password(password),
        status=UserStatus.ACTIVE,
        roles=role_names,
        team=team,
        created_at=stamp,
        updated_at=stamp,
        password_changed_at=stamp,
        failed_logins=0,
    )
    session.add(user)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise ConflictError(f"a user with email {address} exists") from exc
    record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=IdentityAction.USER_CREATED,
        target=f"user:{user.id}",
        change={"email": address, "roles": role_names, "team": team},
    )
    return user


def get_user(session: Session, *, user_id: str) -> User:
    user = session.execute(select(User).where(User.id == user_id)).scalar_one_or_none()
    if user is None:
        raise NotFoundError("user not found")
    return user


def find_user(session: Session, *, tenant_id: str, email: str) -> User | None:
    """Across tenants (login): explicit tenant filter."""
    return session.execute(
        select(User).where(User.tenant_id == tenant_id, User.email == email.strip().lower())
    ).scalar_one_or_none()


def list_users(
    session: Session, *, status: str | None = None, after: str | None = None, limit: int = 100
) -> list[User]:
    query = select(User).order_by(User.email)
    if status:
        query = query.where(User.status == status)
    if after:
        query = query.where(User.email > after)
    return list(session.execute(query.limit(limit)).scalars())


def update_user(
    session: Session,
    *,
    user: User,
    roles: Sequence[str] | None = None,
    status: UserStatus | None = None,
    team: str | None = None,
    granter: Principal | None,
    actor: str,
) -> User:
    if granter is not None and granter.kind == "user" and granter.subject_id == user.id:
        if status is not None and status != UserStatus.ACTIVE:
            raise InvalidInputError("you cannot disable or lock yourself", field="body.status")
        if roles is not None:
            raise InvalidInputError("you cannot change your own roles", field="body.roles")
    if roles is not None:
        new_roles = check_roles(session, tenant_id=user.tenant_id, roles=roles, granter=granter)
        if new_roles != sorted(user.roles):
            record(
                session,
                tenant_id=user.tenant_id,
                actor=actor,
                action=IdentityAction.USER_ROLES_CHANGED,
                target=f"user:{user.id}",
                change={"from": sorted(user.roles), "to": new_roles},
            )
            user.roles = new_roles
    if status is not None and status != user.status:
        record(
            session,
            tenant_id=user.tenant_id,
            actor=actor,
            action=IdentityAction.USER_STATUS_CHANGED,
            target=f"user:{user.id}",
            change={"from": user.status, "to": status.value},
        )
        user.status = status.value
        if status == UserStatus.ACTIVE:
            user.failed_logins = 0
            user.locked_until = None
    if team is not None and team != user.team:
        record(
            session,
            tenant_id=user.tenant_id,
            actor=actor,
            action=IdentityAction.USER_UPDATED,
            target=f"user:{user.id}",
            change={"team": team},
        )
        user.team = team or None
    user.updated_at = now()
    return user


def set_password(
    session: Session, *, user: User, password: str, min_length: int, actor: str
) -> None:
    check_password(password, min_length=min_length, field="body.new_password")
    user.password_hash = hash_password(password)
    user.password_changed_at = user.updated_at = now()
    record(
        session,
        tenant_id=user.tenant_id,
        actor=actor,
        action=IdentityAction.PASSWORD_CHANGED,
        target=f"user:{user.id}",
    )
