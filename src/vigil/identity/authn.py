"""Authentication of API requests: ``Authorization: Bearer vgl_...`` (API keys) or an access
token (JWT, :mod:`vigil.identity.tokens`).

Verified keys are cached for a short while (``identity.key_cache_ttl_s``) so a request costs a
hash and a dict look-up. Revocation, rotation and role changes publish an :class:`Invalidation`
on the runtime's :class:`RevocationBus`; the in-process bus drops the affected entries at once,
and a bus that crosses processes (Redis pub/sub, :mod:`vigil.identity.broadcast`) does the same
on every replica. Changes made outside the serving process (the CLI) reach it through the
revocation epoch (:mod:`vigil.identity.revocations`), checked here at most once a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import RequestInfo
from vigil.errors import AuthenticationError
from vigil.identity.apikeys import VerifiedKey, verify_key
from vigil.identity.credentials import api_key_well_formed, looks_like_api_key, sha256_hex
from vigil.identity.invalidation import Invalidation as Invalidation  # re-exported
from vigil.identity.principal import Principal
from vigil.obs.metrics import AUTH_FAILURES
from vigil.store.tenancy import system_session

GENERIC_FAILURE = "invalid or missing credentials"


class RevocationBus(Protocol):
    """Carries invalidations to every cache of every process."""

    def publish(self, invalidation: Invalidation) -> None: ...

    def subscribe(self, callback: Callable[[Invalidation], None]) -> None: ...


class LocalRevocationBus:
    """One process (the embedded deployment, tests): subscribers are called synchronously."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Invalidation], None]] = []

    def subscribe(self, callback: Callable[[Invalidation], None]) -> None:
        self._callbacks.append(callback)

    def publish(self, invalidation: Invalidation) -> None:
        self.deliver(invalidation)

    def deliver(self, invalidation: Invalidation) -> None:
        for callback in self._callbacks:
            callback(invalidation)


@dataclass(frozen=True, slots=True)
class _Entry:
    verified: VerifiedKey
    fresh_until: float


def _matches(principal: Principal, inv: Invalidation) -> bool:
    if inv.everything or principal.tenant_id in inv.tenant_ids:
        return True
    if principal.subject_id in inv.key_ids:
        return True
    user_id = principal.attributes.get("user_id")
    return user_id is not None and user_id in inv.user_ids


class KeyCache:
    """sha256(key) → verified key, for ``ttl`` seconds. A look-up that started before an
    invalidation cannot re-insert what the invalidation removed (generation check)."""

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, key_hash: str) -> VerifiedKey | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry.fresh_until < time.monotonic():
            self._entries.pop(key_hash, None)
            return None
        expires = entry.verified.expires_at
        if expires is not None and expires <= datetime.now(UTC):
            self._entries.pop(key_hash, None)
            return None
        return entry.verified

    def put(self, key_hash: str, verified: VerifiedKey, generation: int) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key_hash] = _Entry(verified, time.monotonic() + self.ttl)

    def invalidate(self, inv: Invalidation) -> None:
        with self._lock:
            self.generation += 1
            if inv.everything:
                self._entries.clear()
                return
            for key_hash, entry in list(self._entries.items()):
                if _matches(entry.verified.principal, inv):
                    del self._entries[key_hash]

    def __len__(self) -> int:
        return len(self._entries)


class TokenVerifier(Protocol):
    def authenticate(self, token: str, request: RequestInfo) -> Principal: ...

    def cached(self, token: str) -> Principal | None: ...


def bearer_credential(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    credential = credential.strip()
    return credential or None


def fail(reason: str) -> AuthenticationError:
    """The one 401 every failure produces (ASVS: never say which part was wrong); the reason
    goes only to the metric."""
    AUTH_FAILURES.labels(reason).inc()
    return AuthenticationError(GENERIC_FAILURE)


class EpochCheck(Protocol):
    def due(self) -> bool:
        """Whether :meth:`check` would look at the database now."""
        ...

    def check(self) -> None:
        """Flush the caches if credentials were revoked elsewhere (cheap; never raises)."""
        ...


class IdentityAuthenticator:
    """The runtime's :class:`vigil.api.deps.Authenticator`."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        cache: KeyCache,
        tokens: TokenVerifier | None = None,
        epoch: EpochCheck | None = None,
    ) -> None:
        self.sessions = sessions
        self.cache = cache
        self.tokens = tokens
        self.epoch = epoch

    def authenticate(self, request: RequestInfo) -> Principal:
        if self.epoch is not None:
            self.epoch.check()
        credential = bearer_credential(request.headers)
        if credential is None:
            raise fail("missing")
        if looks_like_api_key(credential):
            return self.verify_api_key(credential).principal
        if self.tokens is None:
            raise fail("unsupported")
        return self.tokens.authenticate(credential, request)

    def cached(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller when that needs no database look-up (cache hit), else None. Never
        raises: middleware uses it to pick a rate-limit key without blocking the event loop."""
        if self.epoch is not None and self.epoch.due():
            # The revocation epoch needs a look-up: let authenticate() (in a thread) do it.
            return None
        credential = bearer_credential(headers)
        if credential is None:
            return None
        if looks_like_api_key(credential):
            if not api_key_well_formed(credential):
                return None
            hit = self.cache.get(sha256_hex(credential))
            return hit.principal if hit is not None else None
        return self.tokens.cached(credential) if self.tokens is not None else None

    def verify_api_key(self, secret: str) -> VerifiedKey:
        if not api_key_well_formed(secret):
            raise fail("malformed_key")
        key_hash = sha256_hex(secret)
        hit = self.cache.get(key_hash)
        if hit is not None:
            return hit
        generation = self.cache.generation
        session = system_session(self.sessions)
        try:
            verified = verify_key(session, secret=secret)
            session.commit()  # last_used_at
        finally:
            session.close()
        if verified is None:
            raise fail("unknown_key")
        self.cache.put(key_hash, verified, generation)
        return verified
