"""Wire the identity domain onto a runtime: the authenticator (API keys, access tokens), the
policy decision point, the revocation bus and the rate-limit middleware.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.identity.authn import IdentityAuthenticator, KeyCache, LocalRevocationBus
from vigil.identity.context import IDENTITY_KEY, IdentityServices

if TYPE_CHECKING:
    from vigil.runtime import Runtime


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    settings = runtime.settings.identity
    cache = KeyCache(settings.key_cache_ttl_s)
    bus = LocalRevocationBus()
    bus.subscribe(cache.invalidate)
    authenticator = IdentityAuthenticator(sessions=runtime.sessions, cache=cache)
    runtime.extras[IDENTITY_KEY] = IdentityServices(
        settings=settings, cache=cache, bus=bus, authenticator=authenticator
    )
    runtime.authenticator = authenticator
