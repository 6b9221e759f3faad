"""Database fixtures for the alerts and incidents tests (imported by both conftests).

Migrating a fresh database per test costs ~0.2 s on SQLite and ~0.8 s on PostgreSQL, so these
tests share one migrated database per module and backend (same backends, same PostgreSQL server
as ``tests/conftest.py``) and empty the tables they touch after every test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PG_BASE_URL
from vigil.store import create_engine_for, session_factory, upgrade
from vigil.store.tenancy import tenant_session

#: Children first.
TABLES = (
    "escalation_steps",
    "escalation_policies",
    "incident_timeline",
    "incident_alerts",
    "incidents",
    "alert_comments",
    "alert_transitions",
    "alert_detections",
    "alerts",
    "outbox_events",
    "usage_counters",
)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def shared_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "vigil.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = (
        make_url(PG_BASE_URL)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="module")
def shared_engine(shared_url: str) -> Iterator[Engine]:
    engine = create_engine_for(shared_url)
    yield engine
    engine.dispose()


@pytest.fixture
def factory(shared_engine: Engine) -> Iterator[sessionmaker[Session]]:
    """Sessions on the shared database; the domain tables are emptied after the test."""
    yield session_factory(shared_engine)
    from vigil.store.base import Base

    with Session(shared_engine) as session:
        for name in TABLES:
            session.execute(delete(Base.metadata.tables[name]))
        session.commit()


@pytest.fixture
def db(factory: sessionmaker[Session]) -> Iterator[Session]:
    """An unscoped (system) session, as the pipeline and the workers use."""
    session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def tenant_db(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session scoped to tenant ``tenant-a``, as the API uses."""
    from tests.alerts.helpers import TENANT

    session = tenant_session(factory, TENANT)
    try:
        yield session
    finally:
        session.rollback()
        session.close()
