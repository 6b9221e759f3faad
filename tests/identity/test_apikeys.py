"""API keys on both backends: creation, verification, scopes, expiry, rotation, revocation,
tenant isolation, and the authenticator's cache with immediate revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import RequestInfo
from vigil.errors import AuthenticationError, InvalidInputError, NotFoundError
from vigil.identity import apikeys, service
from vigil.identity.authn import IdentityAuthenticator, Invalidation, KeyCache
from vigil.identity.credentials import sha256_hex
from vigil.identity.models import ApiKey, Tenant, UserStatus
from vigil.identity.principal import BUILTIN_ROLES, Permission
from vigil.ledger.models import AuditEntry
from vigil.store import session_scope
from vigil.store.tenancy import system_session

from .conftest import scoped


def _key(factory: sessionmaker[Session], tenant: Tenant, **kw: object) -> apikeys.NewKey:
    with session_scope(factory) as s:
        s.info["tenant_id"] = tenant.id
        args: dict[str, object] = {"name": "k", "roles": ["viewer"], "granter": None}
        args.update(kw)
        return apikeys.create_key(s, tenant_id=tenant.id, actor="system:test", **args)  # type: ignore[arg-type]


def _verify(factory: sessionmaker[Session], secret: str) -> apikeys.VerifiedKey | None:
    with session_scope(factory) as s:
        return apikeys.verify_key(s, secret=secret)


def test_key_is_stored_only_as_a_hash(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    new = _key(factory, acme)
    with session_scope(factory) as s:
        row = s.execute(select(ApiKey)).scalar_one()
        values = [str(getattr(row, col.key)) for col in ApiKey.__table__.columns]
    assert new.secret not in " ".join(values)
    assert row.secret_hash == sha256_hex(new.secret)
    assert new.secret.startswith(row.prefix)
    verified = _verify(factory, new.secret)
    assert verified is not None
    assert verified.principal.tenant_id == acme.id
    assert verified.principal.permissions == BUILTIN_ROLES["viewer"]
    assert verified.principal.kind == "key"


def test_key_creation_is_audited(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    new = _key(factory, acme)
    with session_scope(factory) as s:
        actions = s.execute(select(AuditEntry.action).where(AuditEntry.tenant == acme.id)).scalars()
        assert "identity.key_created" in list(actions)
        assert new.secret.encode() not in b"".join(s.execute(select(AuditEntry.data)).scalars())


def test_scopes_narrow_and_must_be_held(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    new = _key(factory, acme, roles=["security"], scopes=[Permission.ALERTS_READ])
    verified = _verify(factory, new.secret)
    assert verified is not None and verified.principal.permissions == {"alerts:read"}
    with pytest.raises(InvalidInputError):
        _key(factory, acme, roles=["viewer"], scopes=[Permission.USERS_MANAGE])
    with pytest.raises(InvalidInputError):
        _key(factory, acme, roles=["nosuchrole"])


def test_expired_and_revoked_keys_do_not_verify(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    with pytest.raises(InvalidInputError):
        _key(factory, acme, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    soon = _key(factory, acme, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert _verify(factory, soon.secret) is not None
    with session_scope(factory) as s:
        s.execute(select(ApiKey).where(ApiKey.id == soon.key.id)).scalar_one().expires_at = (
            datetime.now(UTC) - timedelta(seconds=1)
        )
    assert _verify(factory, soon.secret) is None
    live = _key(factory, acme)
    with session_scope(factory) as s:
        apikeys.revoke_key(s, key=apikeys.get_key(s, key_id=live.key.id), actor="system:test")
    assert _verify(factory, live.secret) is None


def test_rotation_keeps_the_old_key_for_the_grace_period(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    old = _key(factory, acme, roles=["security"])
    with session_scope(factory) as s:
        new = apikeys.rotate_key(
            s, key=apikeys.get_key(s, key_id=old.key.id), grace_s=3600, actor="system:test"
        )
    assert new.secret != old.secret
    assert _verify(factory, old.secret) is not None
    fresh = _verify(factory, new.secret)
    assert fresh is not None and fresh.principal.roles == {"security"}
    with session_scope(factory) as s:
        row = apikeys.get_key(s, key_id=old.key.id)
        assert row.replaced_by == new.key.id
        assert row.expires_at is not None
    # zero grace: the old key stops at once
    with session_scope(factory) as s:
        apikeys.rotate_key(
            s, key=apikeys.get_key(s, key_id=new.key.id), grace_s=0, actor="system:test"
        )
    assert _verify(factory, new.secret) is None


def test_key_of_a_disabled_owner_stops_working(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    with session_scope(factory) as s:
        user = service.create_user(
            s,
            tenant_id=acme.id,
            email="ann@acme.test",
            password="a long password 1",
            roles=["security"],
            granter=None,
            actor="system:test",
        )
        user_id = user.id
    new = _key(factory, acme, roles=["security"], user_id=user_id)
    assert _verify(factory, new.secret) is not None
    with session_scope(factory) as s:
        s.info["tenant_id"] = acme.id
        service.update_user(
            s,
            user=service.get_user(s, user_id=user_id),
            status=UserStatus.DISABLED,
            granter=None,
            actor="system:test",
        )
    assert _verify(factory, new.secret) is None


def test_keys_are_invisible_across_tenants(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, globex = two_tenants
    a = _key(factory, acme)
    _key(factory, globex)
    with scoped(factory, globex) as s:
        assert [k.tenant_id for k in apikeys.list_keys(s)] == [globex.id]
        with pytest.raises(NotFoundError):
            apikeys.get_key(s, key_id=a.key.id)
    with scoped(factory, acme) as s:
        assert [k.id for k in apikeys.list_keys(s)] == [a.key.id]


def _request(secret: str) -> RequestInfo:
    return RequestInfo(
        headers={"authorization": f"Bearer {secret}"},
        client_host="127.0.0.1",
        method="GET",
        path="/v1/x",
    )


def test_authenticator_caches_and_revocation_is_immediate(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    new = _key(factory, acme)
    cache = KeyCache(ttl=3600)
    auth = IdentityAuthenticator(sessions=factory, cache=cache)
    assert auth.authenticate(_request(new.secret)).subject_id == new.key.id
    assert len(cache) == 1
    with session_scope(factory) as s:
        apikeys.revoke_key(s, key=apikeys.get_key(s, key_id=new.key.id), actor="system:test")
    # still cached (the DB says revoked) until the invalidation arrives
    assert auth.authenticate(_request(new.secret)).subject_id == new.key.id
    cache.invalidate(Invalidation(key_ids=(new.key.id,)))
    with pytest.raises(AuthenticationError):
        auth.authenticate(_request(new.secret))


def test_lookup_started_before_an_invalidation_is_not_cached(
    factory: sessionmaker[Session], two_tenants: tuple[Tenant, Tenant]
) -> None:
    acme, _ = two_tenants
    new = _key(factory, acme)
    cache = KeyCache(ttl=3600)
    verified = _verify(factory, new.secret)
    assert verified is not None
    generation = cache.generation
    cache.invalidate(Invalidation(key_ids=(new.key.id,)))
    cache.put(sha256_hex(new.secret), verified, generation)
    assert cache.get(sha256_hex(new.secret)) is None


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic dXNlcjpwYXNz", "Bearer vgl_short", "Bearer vgl_" + "A" * 28],
)
def test_bad_credentials_get_one_generic_error(factory: sessionmaker[Session], header: str) -> None:
    auth = IdentityAuthenticator(sessions=factory, cache=KeyCache(ttl=10))
    info = RequestInfo(
        headers={"authorization": header} if header else {},
        client_host=None,
        method="GET",
        path="/",
    )
    with pytest.raises(AuthenticationError) as err:
        auth.authenticate(info)
    assert str(err.value) == "invalid or missing credentials"


def test_unknown_well_formed_key_is_rejected(factory: sessionmaker[Session]) -> None:
    from vigil.identity.credentials import new_api_key

    auth = IdentityAuthenticator(sessions=factory, cache=KeyCache(ttl=10))
    with system_session(factory) as s:
        assert s.execute(select(ApiKey)).first() is None
    with pytest.raises(AuthenticationError):
        auth.authenticate(_request(new_api_key()))
