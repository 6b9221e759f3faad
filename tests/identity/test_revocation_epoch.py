"""The revocation epoch: migration 0011, which identity changes move it (in their own
transaction, and only when it commits), and the watcher that flushes a process's caches."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from tests.identity.conftest import make_tenant
from vigil.identity import apikeys, service, sessions
from vigil.identity.invalidation import Invalidation
from vigil.identity.models import UserStatus
from vigil.identity.revocations import EpochWatcher, pending, read_epoch
from vigil.store import create_engine_for, session_scope, upgrade
from vigil.store.base import Base
from vigil.store.migrate import downgrade, import_models
from vigil.store.tenancy import system_session

CLI = "system:test"


def test_migration_matches_the_model_and_goes_down_and_up(database_url: str) -> None:
    upgrade(database_url)
    import_models()
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
        assert [d for d in diffs if "'identity_epoch'" in repr(d)] == []
        with session_scope(sessionmaker(engine)) as s:
            assert read_epoch(s) == 0  # the seeded row
        downgrade(database_url, "0010_identity_sessions")
        assert "identity_epoch" not in inspect(engine).get_table_names()
        upgrade(database_url)
        assert "identity_epoch" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _epoch(factory: sessionmaker[Session]) -> int:
    with session_scope(factory) as s:
        return read_epoch(s)


def test_revoking_changes_move_the_epoch_when_they_commit(factory: sessionmaker[Session]) -> None:
    tenant = make_tenant(factory, "acme")
    with session_scope(factory) as s:
        user = service.create_user(
            s,
            tenant_id=tenant.id,
            email="a@acme.test",
            password="a long enough password",
            roles=["security"],
            granter=None,
            actor=CLI,
        )
        key = apikeys.create_key(
            s, tenant_id=tenant.id, name="k", roles=["viewer"], granter=None, actor=CLI
        ).key
        user_id, key_id = user.id, key.id
    start = _epoch(factory)
    assert start == 0  # creating things revokes nothing

    s = system_session(factory)
    try:
        apikeys.revoke_key(s, key=apikeys.get_key(s, key_id=key_id), actor=CLI)
        s.rollback()
    finally:
        s.close()
    assert _epoch(factory) == start  # rolled back: nothing moved

    s = system_session(factory)
    try:
        apikeys.revoke_key(s, key=apikeys.get_key(s, key_id=key_id), actor=CLI)
        user = service.get_user(s, user_id=user_id)
        service.update_user(s, user=user, status=UserStatus.DISABLED, granter=None, actor=CLI)
        s.commit()
        assert pending(s) == [
            Invalidation(key_ids=(key_id,)),
            Invalidation(user_ids=(user_id,)),
        ]
    finally:
        s.close()
    assert _epoch(factory) == start + 1  # one transaction, one move

    with session_scope(factory) as s:
        user = service.get_user(s, user_id=user_id)
        # Not a revocation: an unlock or a login changes no cached credential.
        sessions.unlock_user(s, user=user, actor=CLI)
    assert _epoch(factory) == start + 1


def test_watcher_flushes_when_the_epoch_moves(factory: sessionmaker[Session]) -> None:
    delivered: list[Invalidation] = []
    watcher = EpochWatcher(sessions=factory, deliver=delivered.append, interval_s=0)
    watcher.check()
    assert delivered == [Invalidation(everything=True)]  # the first reading
    watcher.check()
    assert len(delivered) == 1 and watcher.flushes == 0
    tenant = make_tenant(factory, "acme")
    with session_scope(factory) as s:
        row = service.get_tenant(s, tenant_id=tenant.id)
        service.update_tenant(s, tenant=row, changes={"require_mfa": True}, actor=CLI)
    watcher.check()
    assert delivered == [Invalidation(everything=True)] * 2 and watcher.flushes == 1


def test_watcher_reads_at_most_once_per_interval(factory: sessionmaker[Session]) -> None:
    delivered: list[Invalidation] = []
    watcher = EpochWatcher(sessions=factory, deliver=delivered.append, interval_s=3600)
    watcher.check()
    tenant = make_tenant(factory, "acme")
    with session_scope(factory) as s:
        row = service.get_tenant(s, tenant_id=tenant.id)
        service.update_tenant(s, tenant=row, changes={"require_mfa": True}, actor=CLI)
    watcher.check()  # within the interval: no look-up, so no flush yet
    assert delivered == [Invalidation(everything=True)]
