"""What the identity domain shares on the runtime (``runtime.extras["identity"]``): the key cache,
the revocation bus and the authenticator, so views can publish invalidations and middleware can
authenticate once per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vigil.identity.authn import IdentityAuthenticator, Invalidation, KeyCache, RevocationBus
from vigil.identity.config import IdentitySettings

if TYPE_CHECKING:
    from vigil.runtime import Runtime

IDENTITY_KEY = "identity"


@dataclass
class IdentityServices:
    settings: IdentitySettings
    cache: KeyCache
    bus: RevocationBus
    authenticator: IdentityAuthenticator
    #: Other parts that want to hear about invalidations (policy cache, session cache...).
    extras: dict[str, Any] = field(default_factory=dict)

    def invalidate(self, invalidation: Invalidation) -> None:
        """Call after the transaction that revoked or changed something has committed."""
        self.bus.publish(invalidation)


def identity_of(runtime: Runtime) -> IdentityServices:
    services = runtime.extras.get(IDENTITY_KEY)
    if not isinstance(services, IdentityServices):
        raise RuntimeError("the identity domain is not wired onto this runtime")
    return services
