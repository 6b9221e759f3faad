"""Identity fixtures: a migrated database (SQLite and PostgreSQL) with an initialised ledger, and
the shared Redis (its URL, failing clearly when it is down)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vigil.identity import service
from vigil.identity.models import Tenant
from vigil.ledger import service as ledger
from vigil.store import session_factory, session_scope
from vigil.store.tenancy import system_session, tenant_session

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def factory(db_engine: Engine, tmp_path: Path) -> sessionmaker[Session]:
    sessions = session_factory(db_engine)
    with session_scope(sessions) as s:
        ledger.init_log(s, home=tmp_path / "home", origin="test/audit")
    return sessions


@pytest.fixture
def system(factory: sessionmaker[Session]) -> Iterator[Session]:
    session = system_session(factory)
    yield session
    session.rollback()
    session.close()


def make_tenant(factory: sessionmaker[Session], name: str) -> Tenant:
    with session_scope(factory) as s:
        return service.create_tenant(s, name=name, actor="system:test")


@pytest.fixture
def two_tenants(factory: sessionmaker[Session]) -> tuple[Tenant, Tenant]:
    return make_tenant(factory, "acme"), make_tenant(factory, "globex")


def scoped(factory: sessionmaker[Session], tenant: Tenant) -> Session:
    return tenant_session(factory, tenant.id)


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests hash with light argon2id parameters (same algorithm and code path); the
    server tests keep the production parameters."""
    from argon2 import PasswordHasher

    from vigil.identity import credentials

    light = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    monkeypatch.setattr(credentials, "_HASHER", light)
    monkeypatch.setattr(credentials, "_DUMMY_HASH", light.hash("dummy"))


@pytest.fixture
def redis_url() -> str:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is unreachable at {REDIS_URL}: {exc}", pytrace=False)
    finally:
        client.close()
    return REDIS_URL
