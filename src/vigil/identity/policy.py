"""The declared access policy of every HTTP route: ONE table (:data:`ROUTE_POLICY`), checked by
``tests/api/test_authz_matrix.py`` against the running server and against each route's
``require(...)`` dependency.

Adding a route? Add one line ``"METHOD /path/{template}": <access>`` below, where access is
:data:`PUBLIC` (no credentials), :data:`AUTHENTICATED` (any valid credential, no permission:
the caller's own profile, logout), :data:`USER_SESSION` (a signed-in user, not an API key:
password change, MFA enrolment) or the :class:`Permission` the route requires.
The matrix test prints the exact lines that are missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vigil.identity.principal import Permission as P

PUBLIC = "public"
AUTHENTICATED = "authenticated"
#: Authenticated as a signed-in user (access token); API keys get 403 (no password or TOTP).
USER_SESSION = "user-session"

ROUTE_POLICY: dict[str, str] = {
    # --- obs -------------------------------------------------------------------------------------
    "GET /health/live": PUBLIC,
    "GET /health/ready": PUBLIC,
    "GET /health/deep": P.QUEUE_READ,
    "GET /metrics": PUBLIC,  # Prometheus scrape; route templates and counts only
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /docs/oauth2-redirect": PUBLIC,
    "GET /redoc": PUBLIC,
    # --- ingest, rules, alerts --------------------------------------------------------------------
    "POST /v1/events": P.EVENTS_WRITE,
    "GET /v1/queue/dead-letters": P.QUEUE_READ,
    "POST /v1/queue/dead-letters/{dead_letter_id}/replay": P.QUEUE_WRITE,
    "GET /v1/rules": P.RULES_READ,
    "GET /v1/rules/status": P.RULES_READ,
    "GET /v1/rules/{rule_id}": P.RULES_READ,
    "PATCH /v1/rules/{rule_id}": P.RULES_WRITE,
    "GET /v1/alerts": P.ALERTS_READ,
    "POST /v1/alerts/bulk": P.ALERTS_WRITE,
    "GET /v1/alerts/{alert_id}": P.ALERTS_READ,
    "PATCH /v1/alerts/{alert_id}": P.ALERTS_WRITE,
    "POST /v1/alerts/{alert_id}/comments": P.ALERTS_WRITE,
    # --- incidents and escalation ----------------------------------------------------------------
    "GET /v1/incidents": P.INCIDENTS_READ,
    "POST /v1/incidents": P.INCIDENTS_WRITE,
    "GET /v1/incidents/{incident_id}": P.INCIDENTS_READ,
    "PATCH /v1/incidents/{incident_id}": P.INCIDENTS_WRITE,
    "POST /v1/incidents/{incident_id}/comments": P.INCIDENTS_WRITE,
    "POST /v1/incidents/{incident_id}/alerts": P.INCIDENTS_WRITE,
    "DELETE /v1/incidents/{incident_id}/alerts/{alert_id}": P.INCIDENTS_WRITE,
    "GET /v1/escalation-policies": P.INCIDENTS_READ,
    "POST /v1/escalation-policies": P.INCIDENTS_WRITE,
    "GET /v1/escalation-policies/{policy_id}": P.INCIDENTS_READ,
    "PATCH /v1/escalation-policies/{policy_id}": P.INCIDENTS_WRITE,
    "DELETE /v1/escalation-policies/{policy_id}": P.INCIDENTS_WRITE,
    # --- notifications ----------------------------------------------------------------------------
    "GET /v1/notifications/channels": P.NOTIFY_READ,
    "POST /v1/notifications/channels": P.NOTIFY_WRITE,
    "GET /v1/notifications/channels/{channel_id}": P.NOTIFY_READ,
    "PATCH /v1/notifications/channels/{channel_id}": P.NOTIFY_WRITE,
    "DELETE /v1/notifications/channels/{channel_id}": P.NOTIFY_WRITE,
    "POST /v1/notifications/channels/{channel_id}/rotate-secret": P.NOTIFY_WRITE,
    "POST /v1/notifications/channels/{channel_id}/circuit/reset": P.NOTIFY_WRITE,
    "POST /v1/notifications/channels/{channel_id}/test": P.NOTIFY_WRITE,
    "GET /v1/notifications/routes": P.NOTIFY_READ,
    "POST /v1/notifications/routes": P.NOTIFY_WRITE,
    "GET /v1/notifications/routes/{route_id}": P.NOTIFY_READ,
    "PATCH /v1/notifications/routes/{route_id}": P.NOTIFY_WRITE,
    "DELETE /v1/notifications/routes/{route_id}": P.NOTIFY_WRITE,
    "GET /v1/notifications/deliveries": P.NOTIFY_READ,
    "GET /v1/notifications/deliveries/{delivery_id}": P.NOTIFY_READ,
    "GET /v1/notifications/dead-letters": P.NOTIFY_READ,
    "POST /v1/notifications/dead-letters/retry": P.NOTIFY_WRITE,
    "POST /v1/notifications/dead-letters/{delivery_id}/retry": P.NOTIFY_WRITE,
    # --- audit ledger ----------------------------------------------------------------------------
    "GET /v1/audit/checkpoint": P.AUDIT_READ,
    "POST /v1/audit/checkpoint": P.TENANT_MANAGE,
    "GET /v1/audit/keys": P.AUDIT_READ,
    "GET /v1/audit/entries": P.AUDIT_READ,
    "GET /v1/audit/entries/{seq}": P.AUDIT_READ,
    "GET /v1/audit/entries/{seq}/proof": P.AUDIT_READ,
    "GET /v1/audit/consistency": P.AUDIT_READ,
    # --- identity: sessions -----------------------------------------------------------------------
    "POST /v1/auth/login": PUBLIC,
    "POST /v1/auth/refresh": PUBLIC,
    "POST /v1/auth/logout": AUTHENTICATED,
    "GET /v1/auth/me": AUTHENTICATED,
    "POST /v1/auth/password": USER_SESSION,
    "POST /v1/auth/mfa/totp": USER_SESSION,
    "POST /v1/auth/mfa/totp/confirm": USER_SESSION,
    "POST /v1/auth/mfa/totp/disable": USER_SESSION,
    # --- identity: users, roles, keys, tenant, access rules ---------------------------------------
    "GET /v1/users": P.USERS_MANAGE,
    "POST /v1/users": P.USERS_MANAGE,
    "GET /v1/users/{user_id}": P.USERS_MANAGE,
    "PATCH /v1/users/{user_id}": P.USERS_MANAGE,
    "POST /v1/users/{user_id}/disable": P.USERS_MANAGE,
    "POST /v1/users/{user_id}/unlock": P.USERS_MANAGE,
    "POST /v1/users/{user_id}/password": P.USERS_MANAGE,
    "DELETE /v1/users/{user_id}/mfa": P.USERS_MANAGE,
    "GET /v1/roles": P.USERS_MANAGE,
    "POST /v1/roles": P.USERS_MANAGE,
    "DELETE /v1/roles/{role_id}": P.USERS_MANAGE,
    "GET /v1/keys": P.KEYS_MANAGE,
    "POST /v1/keys": P.KEYS_MANAGE,
    "GET /v1/keys/{key_id}": P.KEYS_MANAGE,
    "POST /v1/keys/{key_id}/rotate": P.KEYS_MANAGE,
    "DELETE /v1/keys/{key_id}": P.KEYS_MANAGE,
    "GET /v1/tenant": P.TENANT_MANAGE,
    "PATCH /v1/tenant": P.TENANT_MANAGE,
    "GET /v1/access-rules": P.TENANT_MANAGE,
    "POST /v1/access-rules": P.TENANT_MANAGE,
    "DELETE /v1/access-rules/{rule_id}": P.TENANT_MANAGE,
    # --- metering ---------------------------------------------------------------------------------
    "GET /v1/usage": P.USAGE_READ,
}


def policy_for(method: str, path: str) -> str | None:
    return ROUTE_POLICY.get(f"{method.upper()} {path}")


@dataclass(frozen=True, slots=True)
class RouteInfo:
    method: str
    path: str
    permissions: tuple[str, ...]
    """Every ``required_permission`` found in the route's dependency tree."""
    authenticated: bool
    """The route depends on the caller being authenticated (``current_principal``)."""
    user_session: bool
    """The route accepts signed-in users only (``signed_in_user``)."""
    in_schema: bool
    parses_body: bool = False
    """FastAPI parses a JSON body for the route (a body parameter somewhere in its tree)."""

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


def _walk(dependant: Any, perms: list[str], seen: set[str]) -> None:
    if getattr(dependant, "body_params", None):
        seen.add("<body>")
    call = getattr(dependant, "call", None)
    permission = getattr(call, "required_permission", None)
    if permission:
        perms.append(str(permission))
    name = getattr(call, "__name__", "")
    if name:
        seen.add(name)
    for sub in getattr(dependant, "dependencies", []) or []:
        _walk(sub, perms, seen)


def declared_routes(app: Any) -> Iterator[RouteInfo]:
    """Every HTTP route of a FastAPI app with what its dependencies require (FastAPI includes
    routers lazily: walk the route contexts, not ``app.routes``)."""
    from fastapi.routing import iter_route_contexts

    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        path = ctx.path
        methods = ctx.methods or set()
        if path is None:
            continue
        perms: list[str] = []
        names: set[str] = set()
        if dependant is not None:
            _walk(dependant, perms, names)
        for method in sorted(methods - {"HEAD"}):
            yield RouteInfo(
                method=method,
                path=path,
                permissions=tuple(perms),
                authenticated="current_principal" in names or bool(perms),
                user_session="signed_in_user" in names,
                in_schema=bool(getattr(ctx, "include_in_schema", True)),
                parses_body="<body>" in names,
            )
