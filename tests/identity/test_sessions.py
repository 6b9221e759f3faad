"""Login, lockout, refresh rotation and reuse detection, TOTP and recovery codes — on SQLite and
PostgreSQL, through the service functions the API calls."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigil.errors import AuthenticationError, InvalidInputError, RateLimitedError
from vigil.identity import mfa, service, sessions
from vigil.identity.config import IdentitySettings
from vigil.identity.credentials import install_secret
from vigil.identity.models import AuthSession, LoginThrottle, Tenant, User, UserStatus
from vigil.identity.tokens import TokenSigner
from vigil.ledger.models import AuditEntry
from vigil.store import session_scope
from vigil.store.tenancy import system_session

PASSWORD = "a long enough password"


@pytest.fixture
def ctx(tmp_path: Path) -> sessions.LoginContext:
    settings = IdentitySettings(lockout_threshold=3, address_threshold=50, lockout_base_s=60)
    return sessions.LoginContext(
        settings=settings,
        signer=TokenSigner(secret=b"s" * 64, audience="a", issuer="i", ttl_s=900),
        keys=mfa.MfaKeys.from_install_secret(install_secret(tmp_path, "identity")),
        client_address="192.0.2.10",
    )


@pytest.fixture
def user(factory: sessionmaker[Session]) -> User:
    with session_scope(factory) as s:
        tenant = service.create_tenant(s, name="acme", actor="system:test")
        return service.create_user(
            s,
            tenant_id=tenant.id,
            email="Ann@Acme.test",
            password=PASSWORD,
            roles=["security"],
            granter=None,
            actor="system:test",
        )


def _login(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, **kw: str
) -> sessions.TokenPair:
    args = {"tenant_name": "acme", "email": "ann@acme.test", "password": PASSWORD}
    args.update(kw)
    session = system_session(factory)
    try:
        pair = sessions.login(session, ctx=ctx, **args)  # type: ignore[arg-type]
    except Exception:
        session.commit()
        raise
    else:
        session.commit()
        return pair
    finally:
        session.close()


def test_login_issues_tokens_and_is_audited(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    pair = _login(factory, ctx, email="ANN@acme.test")
    claims = ctx.signer.decode(pair.access_token)
    assert claims["sub"] == user.id and claims["sid"] == pair.session_id
    assert pair.refresh_token.startswith("vrt_")
    with session_scope(factory) as s:
        actions = list(s.execute(select(AuditEntry.action)).scalars())
    assert "identity.login_succeeded" in actions


def test_failures_are_generic_and_lock_out_with_backoff(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    messages = set()
    for kw in ({"password": "wrong"}, {"email": "nobody@acme.test"}, {"tenant_name": "nope"}):
        with pytest.raises(AuthenticationError) as err:
            _login(factory, ctx, **kw)
        messages.add(str(err.value))
    assert messages == {"invalid or missing credentials"}
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            _login(factory, ctx, password="wrong again")
    # third failure on the account reached the threshold: blocked, even with the right password
    with pytest.raises(RateLimitedError) as blocked:
        _login(factory, ctx)
    assert 0 < blocked.value.retry_after <= 60
    with session_scope(factory) as s:
        row = s.get(User, user.id)
        assert row is not None and row.status == UserStatus.LOCKED
        actions = list(s.execute(select(AuditEntry.action)).scalars())
    assert "identity.lockout" in actions
    assert actions.count("identity.login_failed") == 4  # the unknown tenant has no ledger


def test_unknown_accounts_back_off_like_real_ones(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    for _ in range(3):
        with pytest.raises(AuthenticationError):
            _login(factory, ctx, email="ghost@acme.test")
    with pytest.raises(RateLimitedError):
        _login(factory, ctx, email="ghost@acme.test")


def test_address_is_blocked_across_accounts(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    tight = sessions.LoginContext(
        settings=ctx.settings.model_copy(update={"address_threshold": 2}),
        signer=ctx.signer,
        keys=ctx.keys,
        client_address="198.51.100.1",
    )
    for email in ("a@acme.test", "b@acme.test"):
        with pytest.raises(AuthenticationError):
            _login(factory, tight, email=email)
    with pytest.raises(RateLimitedError):
        _login(factory, tight)  # right password, blocked address
    _login(factory, ctx)  # another address is fine
    with session_scope(factory) as s:
        scopes = set(s.execute(select(LoginThrottle.scope)).scalars())
    assert "addr:198.51.100.1" in scopes


def _refresh(factory: sessionmaker[Session], ctx: sessions.LoginContext, token: str) -> object:
    with session_scope(factory) as s:
        return sessions.refresh(s, token=token, signer=ctx.signer)


def test_refresh_rotates_and_reuse_revokes_the_family(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    first = _login(factory, ctx)
    second = _refresh(factory, ctx, first.refresh_token)
    assert isinstance(second, sessions.RefreshOutcome) and second.pair is not None
    assert second.pair.session_id == first.session_id
    third = _refresh(factory, ctx, second.pair.refresh_token)
    assert isinstance(third, sessions.RefreshOutcome) and third.pair is not None
    reused = _refresh(factory, ctx, first.refresh_token)
    assert isinstance(reused, sessions.RefreshOutcome)
    assert reused.pair is None and reused.revoked_session == first.session_id
    # the family is gone: even the newest token no longer works
    with pytest.raises(AuthenticationError):
        _refresh(factory, ctx, third.pair.refresh_token)
    with session_scope(factory) as s:
        auth = s.get(AuthSession, first.session_id)
        assert auth is not None and auth.revoked_reason == "refresh_reuse"


def _enrol(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> tuple[str, list[str]]:
    with session_scope(factory) as s:
        u = s.get(User, user.id)
        assert u is not None
        enrolment = mfa.start_enrolment(s, user=u, keys=ctx.keys, issuer="Vigil")
    assert enrolment.otpauth_uri.startswith("otpauth://totp/")
    seed = enrolment.secret
    with session_scope(factory) as s:
        u = s.get(User, user.id)
        assert u is not None
        with pytest.raises(InvalidInputError):
            mfa.confirm_enrolment(s, user=u, keys=ctx.keys, code="000000")
    with session_scope(factory) as s:
        u = s.get(User, user.id)
        assert u is not None
        codes = mfa.confirm_enrolment(
            s, user=u, keys=ctx.keys, code=pyotp.TOTP(seed).at(time.time() - 30)
        )
    return seed, codes


def test_totp_required_single_use_per_step_and_recovery_codes(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    seed, codes = _enrol(factory, ctx, user)
    assert len(codes) == 10 and len(set(codes)) == 10
    with pytest.raises(sessions.MfaRequiredError):
        _login(factory, ctx)
    code = pyotp.TOTP(seed).now()
    _login(factory, ctx, totp_code=code)
    with pytest.raises(AuthenticationError):  # the same code again: replay
        _login(factory, ctx, totp_code=code)
    _login(factory, ctx, recovery_code=codes[0].upper())
    with pytest.raises(AuthenticationError):
        _login(factory, ctx, recovery_code=codes[0])
    with session_scope(factory) as s:
        stored = list(s.execute(select(AuditEntry.action)).scalars())
    assert "identity.mfa_enrolled" in stored and "identity.recovery_code_used" in stored


def test_totp_seed_is_sealed_at_rest(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    from vigil.identity.models import TotpEnrolment

    seed, _ = _enrol(factory, ctx, user)
    with session_scope(factory) as s:
        row = s.execute(select(TotpEnrolment)).scalar_one()
        assert seed.encode() not in row.secret_sealed
        assert ctx.keys.unseal(row.secret_sealed, user.id) == seed


def test_tenant_requiring_mfa_gives_a_pending_session(
    factory: sessionmaker[Session], ctx: sessions.LoginContext, user: User
) -> None:
    with session_scope(factory) as s:
        tenant = s.execute(select(Tenant)).scalar_one()
        service.update_tenant(s, tenant=tenant, changes={"require_mfa": True}, actor="t")
    pair = _login(factory, ctx)
    assert pair.mfa_pending
