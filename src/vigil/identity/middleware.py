"""ASGI middleware of the identity domain: rate limits (pure ASGI, no per-request task).

The caller is identified once here: from the caches when possible (no database, no thread
hop), otherwise by the full authenticator in a worker thread. A known caller is stored on the
request (``request.state.principal``) so ``current_principal`` does not authenticate again; an
unknown or invalid one is limited by source address and left for the route to answer 401.
Health probes and ``/metrics`` are never limited.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil.api.deps import RequestInfo
from vigil.api.problems import problem
from vigil.errors import AuthenticationError
from vigil.identity.context import identity_of
from vigil.identity.principal import Principal
from vigil.identity.ratelimit import Limit, RateDecision
from vigil.obs.metrics import RATE_LIMITED

UNLIMITED_PREFIXES = ("/health/", "/metrics")


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def limit_for(
    principal: Principal | None, address: str | None, default: Limit
) -> tuple[str, Limit]:
    """The counter key and limit for a caller: per key, per user, else per address."""
    if principal is None:
        return f"addr:{address or 'unknown'}", Limit("address", default.requests, default.window_s)
    requests = principal.attributes.get("rate_limit_requests") or default.requests
    window = principal.attributes.get("rate_limit_window_s") or default.window_s
    name = "key" if principal.kind == "key" else "user"
    return f"{principal.kind}:{principal.subject_id}", Limit(name, int(requests), int(window))


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def _principal(self, scope: Scope, headers: dict[str, str]) -> Principal | None:
        services = identity_of(scope["app"].state.runtime)
        if "authorization" not in headers:
            return None
        principal = services.authenticator.cached(headers)
        if principal is None:
            client = scope.get("client")
            info = RequestInfo(
                headers=headers,
                client_host=client[0] if client else None,
                method=scope.get("method", ""),
                path=scope.get("path", ""),
            )
            try:
                principal = await anyio.to_thread.run_sync(
                    services.authenticator.authenticate, info
                )
            except AuthenticationError:
                return None
        scope.setdefault("state", {})["principal"] = principal
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith(UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        runtime = scope["app"].state.runtime
        services = identity_of(runtime)
        limiter = services.limiter
        if limiter is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        principal = await self._principal(scope, headers)
        client = scope.get("client")
        key, limit = limit_for(principal, client[0] if client else None, services.default_limit)
        decision = await limiter.hit(key, limit)
        if not decision.allowed:
            RATE_LIMITED.inc()
            response = problem(
                status=429,
                title="Too many requests",
                detail=f"rate limit of {limit.requests} requests per {limit.window_s} s "
                f"exceeded; retry after {decision.retry_after_s} s",
                slug="rate-limited",
                instance=scope.get("path"),
                headers=decision.headers(),
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send, decision))


def _with_headers(send: Send, decision: RateDecision) -> Any:
    extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped
