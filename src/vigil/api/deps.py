"""FastAPI dependencies every router uses: the runtime, the caller, permissions, a tenant session.

Authentication and authorisation are extension points (:class:`Authenticator`,
:class:`Authorizer`) that the identity domain implements; the runtime holds the instances. Views
declare what they need with ``Depends(require(Permission.ALERTS_READ))`` and get a session that can
only see the caller's tenant with ``Depends(tenant_db)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vigil.errors import AuthenticationError, PermissionDeniedError
from vigil.identity.principal import Principal
from vigil.store.tenancy import tenant_session

if TYPE_CHECKING:
    from vigil.runtime import Runtime


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
        """Return if allowed; raise :class:`vigil.errors.PermissionDeniedError` otherwise."""
        ...


class DenyAllAuthenticator:
    """The safe default until an identity store is configured: nobody gets in."""

    def authenticate(self, request: RequestInfo) -> Principal:
        raise AuthenticationError("authentication required")


class RoleAuthorizer:
    """Plain RBAC: allowed when the principal holds the permission."""

    def authorize(
        self,
        principal: Principal,
        permission: str,
        *,
        resource: Mapping[str, Any] | None = None,
        request: RequestInfo | None = None,
    ) -> None:
        if not principal.has(permission):
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
    """Attribute-based check against one loaded object (tenant, severity, tags, owner...)."""
    get_runtime(request).authorizer.authorize(
        principal, permission, resource=resource, request=request_info(request)
    )


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
