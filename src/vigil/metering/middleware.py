"""ASGI middleware that counts API calls per tenant and route template (``GET /v1/alerts``)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from vigil.identity.principal import Principal
from vigil.metering.meter import meter_of

_SKIP = ("/health/", "/metrics")


class UsageMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(_SKIP):
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            principal = scope.get("state", {}).get("principal")
            route = getattr(scope.get("route"), "path", None)
            if isinstance(principal, Principal) and route:
                meter = meter_of(scope["app"].state.runtime)
                meter.add(
                    principal.tenant_id, "api_calls", 1, dimension=f"{scope.get('method')} {route}"
                )
