"""Wire the identity domain onto a runtime: the authenticator (API keys, access tokens), the
policy decision point, the revocation bus and the rate-limit middleware.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.identity.authn import IdentityAuthenticator, KeyCache, LocalRevocationBus
from vigil.identity.broadcast import RedisRevocationBus
from vigil.identity.context import IDENTITY_KEY, IdentityServices
from vigil.identity.credentials import install_secret
from vigil.identity.decision import PolicyDecisionPoint
from vigil.identity.mfa import MfaKeys
from vigil.identity.middleware import RateLimitMiddleware
from vigil.identity.ratelimit import Limit, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from vigil.identity.revocations import EpochWatcher
from vigil.identity.tokens import TokenAuthenticator, TokenSigner

if TYPE_CHECKING:
    from vigil.runtime import Runtime


def _redis_url(runtime: Runtime) -> str | None:
    url = runtime.settings.queue_url or ""
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def build_limiter(runtime: Runtime) -> RateLimiter | None:
    """Redis when the deployment has a redis:// queue URL (limits hold across replicas),
    otherwise in memory."""
    if not runtime.settings.identity.rate_limit_enabled:
        return None
    url = _redis_url(runtime)
    return RedisRateLimiter(url) if url else MemoryRateLimiter()


def build_services(runtime: Runtime) -> IdentityServices:
    settings = runtime.settings.identity
    home = runtime.settings.home
    signer = TokenSigner(
        secret=install_secret(home, "jwt", settings.jwt_secret),
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        ttl_s=settings.access_token_ttl_s,
    )
    tokens = TokenAuthenticator(signer=signer, sessions=runtime.sessions)
    cache = KeyCache(settings.key_cache_ttl_s)
    pdp = PolicyDecisionPoint(
        sessions=runtime.sessions,
        cache_ttl_s=settings.decision_cache_ttl_s,
        cache_size=settings.decision_cache_size,
    )
    url = _redis_url(runtime)
    # Replicas sharing Redis hear each other's revocations; one process needs no broker.
    bus = RedisRevocationBus(url) if url else LocalRevocationBus()
    bus.subscribe(cache.invalidate)
    bus.subscribe(tokens.invalidate)
    bus.subscribe(pdp.invalidate)
    # Revocations made outside this process (the CLI) flush every local cache within a second.
    epoch = EpochWatcher(
        sessions=runtime.sessions,
        deliver=bus.deliver,
        interval_s=settings.revocation_check_interval_s,
    )
    return IdentityServices(
        settings=settings,
        cache=cache,
        bus=bus,
        authenticator=IdentityAuthenticator(
            sessions=runtime.sessions, cache=cache, tokens=tokens, epoch=epoch
        ),
        tokens=tokens,
        signer=signer,
        mfa_keys=MfaKeys.from_install_secret(install_secret(home, "identity", settings.secret)),
        pdp=pdp,
        limiter=build_limiter(runtime),
        default_limit=Limit("default", settings.rate_limit_requests, settings.rate_limit_window_s),
    )


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    services = build_services(runtime)
    runtime.extras[IDENTITY_KEY] = services
    runtime.authenticator = services.authenticator
    runtime.authorizer = services.pdp
    if isinstance(services.bus, RedisRevocationBus):
        runtime.workers.append(services.bus)
    if role != "worker":
        runtime.extras.setdefault("asgi_middleware", []).append(RateLimitMiddleware)
