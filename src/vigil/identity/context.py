"""What the identity domain shares on the runtime (``runtime.extras["identity"]``): caches, the
revocation bus, token signer, MFA keys, authenticator and policy decision point, so views can
publish invalidations and middleware can authenticate once per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vigil.identity.authn import IdentityAuthenticator, KeyCache, RevocationBus
from vigil.identity.config import IdentitySettings
from vigil.identity.decision import PolicyDecisionPoint
from vigil.identity.invalidation import Invalidation
from vigil.identity.mfa import MfaKeys
from vigil.identity.ratelimit import Limit, RateLimiter
from vigil.identity.tokens import TokenAuthenticator, TokenSigner

if TYPE_CHECKING:
    from vigil.runtime import Runtime

IDENTITY_KEY = "identity"


@dataclass
class IdentityServices:
    settings: IdentitySettings
    cache: KeyCache
    bus: RevocationBus
    authenticator: IdentityAuthenticator
    tokens: TokenAuthenticator
    signer: TokenSigner
    mfa_keys: MfaKeys
    pdp: PolicyDecisionPoint
    limiter: RateLimiter | None
    """None when rate limiting is switched off."""
    default_limit: Limit

    def invalidate(self, invalidation: Invalidation) -> None:
        """Call after the transaction that revoked or changed something has committed."""
        self.bus.publish(invalidation)


def identity_of(runtime: Runtime) -> IdentityServices:
    services = runtime.extras.get(IDENTITY_KEY)
    if not isinstance(services, IdentityServices):
        raise RuntimeError("the identity domain is not wired onto this runtime")
    return services
