"""Access tokens: short-lived JWTs (HS256 only) and their verification.

Claims: ``iss``, ``aud``, ``sub`` (user id), ``tid`` (tenant id), ``sid`` (login session id),
``iat``, ``nbf``, ``exp``, ``jti`` and ``typ`` = "access"; header ``typ`` = "at+jwt" (RFC 9068).
Verification pins the algorithm list to HS256 (so ``alg: none`` and algorithm confusion fail),
requires every claim above, and checks audience and issuer. After the signature, the login
session and the user are looked up (cached for a few seconds, dropped at once on logout, role or
status changes in this process) so logout and disabling a user end access tokens too.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import RequestInfo
from vigil.errors import AuthenticationError
from vigil.identity.authn import fail
from vigil.identity.invalidation import Invalidation
from vigil.identity.models import AuthSession, Tenant, User, UserStatus
from vigil.identity.principal import Principal
from vigil.identity.service import as_utc, now, role_permissions
from vigil.store.tenancy import system_session

ALGORITHMS = ["HS256"]
TOKEN_TYPE = "access"
HEADER_TYPE = "at+jwt"
_REQUIRED = ["iss", "aud", "sub", "tid", "sid", "iat", "nbf", "exp", "jti", "typ"]


@dataclass(frozen=True, slots=True)
class TokenSigner:
    secret: bytes
    audience: str
    issuer: str
    ttl_s: int

    def issue(self, *, user_id: str, tenant_id: str, session_id: str) -> str:
        issued = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "tid": tenant_id,
            "sid": session_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.ttl_s,
            "jti": uuid.uuid4().hex,
            "typ": TOKEN_TYPE,
        }
        return jwt.encode(claims, self.secret, algorithm="HS256", headers={"typ": HEADER_TYPE})

    def decode(self, token: str) -> dict[str, Any]:
        """The verified claims, or raise the generic 401."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS or header.get("typ") != HEADER_TYPE:
                raise fail("token_header")
            claims: dict[str, Any] = jwt.decode(
                token,
                self.secret,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": _REQUIRED},
                leeway=5,
            )
        except jwt.ExpiredSignatureError as exc:
            raise fail("token_expired") from exc
        except jwt.PyJWTError as exc:
            raise fail("token_invalid") from exc
        if claims.get("typ") != TOKEN_TYPE:
            raise fail("token_type")
        return claims


@dataclass(frozen=True, slots=True)
class _SessionState:
    principal: Principal | None
    fresh_until: float


class TokenAuthenticator:
    """Verifies access tokens and turns them into principals (``kind="user"``)."""

    def __init__(
        self, *, signer: TokenSigner, sessions: sessionmaker[Session], cache_ttl_s: float = 5.0
    ) -> None:
        self.signer = signer
        self.sessions = sessions
        self.cache_ttl_s = cache_ttl_s
        self._cache: dict[str, _SessionState] = {}
        # token text → verified claims: the signature is checked once per token, the expiry
        # on every use
        self._verified: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.generation = 0

    def _claims(self, token: str) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] > time.time():
                return claims
            self._verified.pop(token, None)
        claims = self.signer.decode(token)
        if len(self._verified) >= 50_000:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def invalidate(self, inv: Invalidation) -> None:
        with self._lock:
            self.generation += 1
            if inv.everything or inv.tenant_ids:
                self._cache.clear()
                return
            for sid, state in list(self._cache.items()):
                p = state.principal
                if sid in inv.session_ids or (p is not None and p.subject_id in inv.user_ids):
                    del self._cache[sid]

    def cached(self, token: str) -> Principal | None:
        """The principal if the token verifies and its session is cached (no database);
        None when a look-up is needed or the token is bad (``authenticate`` will tell)."""
        try:
            claims = self._claims(token)
        except AuthenticationError:
            return None
        state = self._cache.get(str(claims["sid"]))
        if state is None or state.fresh_until < time.monotonic():
            return None
        p = state.principal
        if p is None or p.subject_id != claims["sub"] or p.tenant_id != claims["tid"]:
            return None
        return p

    def authenticate(self, token: str, request: RequestInfo) -> Principal:
        claims = self._claims(token)
        sid = str(claims["sid"])
        state = self._cache.get(sid)
        if state is None or state.fresh_until < time.monotonic():
            generation = self.generation
            principal = self._load(sid)
            state = _SessionState(principal, time.monotonic() + self.cache_ttl_s)
            with self._lock:
                if generation == self.generation:
                    self._cache[sid] = state
        principal = state.principal
        if (
            principal is None
            or principal.subject_id != claims["sub"]
            or principal.tenant_id != claims["tid"]
        ):
            raise fail("session_ended")
        return principal

    def _load(self, sid: str) -> Principal | None:
        session = system_session(self.sessions)
        try:
            row = session.execute(
                select(AuthSession, User, Tenant)
                .join(User, User.id == AuthSession.user_id)
                .join(Tenant, Tenant.id == AuthSession.tenant_id)
                .where(AuthSession.id == sid)
            ).first()
            if row is None:
                return None
            auth, user, tenant = row
            expires = as_utc(auth.expires_at)
            if auth.revoked_at is not None or (expires is not None and expires <= now()):
                return None
            if user.status != UserStatus.ACTIVE:
                return None
            permissions = (
                frozenset()
                if auth.mfa_pending
                else role_permissions(session, tenant_id=user.tenant_id, roles=user.roles)
            )
            return Principal(
                tenant_id=user.tenant_id,
                subject_id=user.id,
                kind="user",
                roles=frozenset(user.roles),
                permissions=permissions,
                attributes={
                    "user_id": user.id,
                    "email": user.email,
                    "team": user.team,
                    "session_id": auth.id,
                    "mfa_pending": auth.mfa_pending,
                    "tenant_name": tenant.name,
                    "rate_limit_requests": tenant.rate_limit_requests,
                    "rate_limit_window_s": tenant.rate_limit_window_s,
                },
            )
        finally:
            session.close()
