"""FastAPI dependencies every router uses: the runtime, the caller, permissions, a tenant session.

Authentication and authorisation are extension points (:class:`Authenticator`,
:class:`Authorizer`) that the identity domain implements; the runtime holds the instances. Views
declare what they need with ``Depends(require(Permission.ALERTS_READ))`` and get a session that can
only see the caller's tenant with ``Depends(tenant_db)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vigil.errors import AuthenticationError, PermissionDeniedError
from vigil.identity.principal import Principal
from vigil.store.tenancy import tenant_session

if TYPE_CHECKING:
    from vigil.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What authentication may look at: headers (lower-case names), peer address, path."""

    headers: Mapping[str, str]
    client_host: str | None
    method: str
    path: str


class Authenticator(Protocol):
    def authenticate(self, request: RequestInfo) -> Principal:
        """The caller, or raise :class:`vigil.errors.AuthenticationError`."""
        ...


class Authorizer(Protocol):
    def authorize(
        self,
        principal: Principal,
        permission: str,
        *,
        resource: Mapping[str, Any] | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        """Return if allowed; raise :class:`vigil.errors.PermissionDeniedError` otherwise (and
        record the denial)."""
        ...

    def allows_each(
        self,
        principal: Principal,
        permission: str,
        resources: Sequence[Mapping[str, Any]],
        *,
        request: RequestInfo | None = None,
    ) -> list[bool]:
        """The decision for each of ``resources``, without recording denials: for hiding the
        items of a list the caller may not see (a list is not an attempt on each item)."""
        ...


class DenyAllAuthenticator:
    """The safe default until an identity store is configured: nobody gets in."""

    def authenticate(self, request: RequestInfo) -> Principal:
        raise AuthenticationError("authentication required")


class RoleAuthorizer:
    """Plain RBAC: allowed when the principal holds the permission."""

    @staticmethod
    def _allows(principal: Principal, permission: str, resource: Mapping[str, Any] | None) -> bool:
        tenant = resource.get("tenant_id") if resource is not None else None
        return principal.has(permission) and tenant in (None, principal.tenant_id)

    def allows_each(
        self,
        principal: Principal,
        permission: str,
        resources: Sequence[Mapping[str, Any]],
        *,
        request: RequestInfo | None = None,
    ) -> list[bool]:
        return [self._allows(principal, permission, r) for r in resources]

    def authorize(
        self,
        principal: Principal,
        permission: str,
        *,
        resource: Mapping[str, Any] | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        if not self._allows(principal, permission, resource):
            raise PermissionDeniedError(f"missing permission {permission}")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def request_info(request: Request) -> RequestInfo:
    return RequestInfo(
        headers=request.headers,
        client_host=request.client.host if request.client else None,
        method=request.method,
        path=request.url.path,
    )


def current_principal(request: Request) -> Principal:
    """The authenticated caller (cached on the request)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    runtime = get_runtime(request)
    principal = runtime.authenticator.authenticate(request_info(request))
    request.state.principal = principal
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks ``permission``.

    The permission is recorded on the dependency (``required_permission``) so the authorisation
    matrix test can read every route's declared permission.
    """

    def dependency(
        request: Request, principal: Principal = Depends(current_principal)
    ) -> Principal:
        get_runtime(request).authorizer.authorize(
            principal, permission, request=request_info(request)
        )
        return principal

    dependency.required_permission = permission  # type: ignore[attr-defined]
    dependency.__name__ = f"require_{permission.replace(':', '_')}"
    return dependency


def authorize_resource(
    request: Request, principal: Principal, permission: str, resource: Mapping[str, Any]
) -> None:
    """Attribute-based check against one loaded object (tenant, severity, tags, owner...):
    raises :class:`vigil.errors.PermissionDeniedError` (403) and records the denial."""
    get_runtime(request).authorizer.authorize(
        principal, permission, resource=resource, request=request_info(request)
    )


Resources = Callable[[Sequence[T]], Sequence[Mapping[str, Any]]]
"""The attributes of each item of a list (in order), computed for the whole list at once."""


def visible(
    request: Request,
    principal: Principal,
    permission: str,
    items: Sequence[T],
    resources: Resources[T],
) -> list[T]:
    """The items of a list the caller may see under ``permission``; the others are left out
    silently (a list is not an attempt on each of its items, so nothing is recorded)."""
    if not items:
        return []
    allowed = get_runtime(request).authorizer.allows_each(
        principal, permission, resources(items), request=request_info(request)
    )
    return [item for item, ok in zip(items, allowed, strict=True) if ok]


#: Extra page fetches a filtered list may make to fill a page before answering a short one.
FILL_ROUNDS = 5


def visible_page(
    request: Request,
    principal: Principal,
    permission: str,
    *,
    fetch: Callable[[str | None, int], tuple[Sequence[T], str | None]],
    resources: Resources[T],
    cursor: str | None,
    limit: int,
) -> tuple[list[T], str | None]:
    """A cursor page of up to ``limit`` items the caller may see. ``fetch(cursor, n)`` returns
    up to ``n`` rows after ``cursor`` and the cursor after them; rows the access rules hide are
    dropped and more are fetched (asking only for what is missing, so nothing is skipped) until
    the page is full, the list ends, or :data:`FILL_ROUNDS` more fetches were made: then the page
    is short, and its cursor still continues right after the last row looked at."""
    items: list[T] = []
    for _round in range(FILL_ROUNDS + 1):
        rows, cursor = fetch(cursor, limit - len(items))
        items += visible(request, principal, permission, rows, resources)
        if cursor is None or len(items) >= limit:
            break
    return items, cursor


def tenant_db(
    request: Request, principal: Principal = Depends(current_principal)
) -> Iterator[Session]:
    """A session scoped to the caller's tenant; uncommitted work is rolled back at the end."""
    session = tenant_session(get_runtime(request).sessions, principal.tenant_id)
    try:
        yield session
    finally:
        session.rollback()
        session.close()
