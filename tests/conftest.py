"""Shared database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL: ``VIGIL_TEST_PG_URL`` or ``postgresql+psycopg://postgres@127.0.0.1:5432/test``.
Each test gets its own schema (``search_path`` set through the URL), dropped afterwards. When the
server is unreachable the PostgreSQL variants fail with a clear message (``scripts/test`` starts
it); they are never skipped silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from vigil.store import create_engine_for, session_factory, upgrade

PG_BASE_URL = os.environ.get(
    "VIGIL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _pg_admin_engine() -> Engine:
    engine = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_BASE_URL} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0]}); start it (scripts/services-up) or set "
            "VIGIL_TEST_PG_URL",
            pytrace=False,
        )
    return engine


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    engine = _pg_admin_engine()
    yield engine
    engine.dispose()


@pytest.fixture
def pg_schema_url(pg_admin: Engine) -> Iterator[str]:
    """A URL whose connections live in a fresh, private schema."""
    schema = f"vigil_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with pg_admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database URL (not migrated), once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'vigil.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def migrated_url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


@pytest.fixture
def db_engine(migrated_url: str) -> Iterator[Engine]:
    engine = create_engine_for(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session on a migrated database; whatever the test leaves uncommitted is rolled back."""
    session = session_factory(db_engine)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
