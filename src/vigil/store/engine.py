"""Engines and sessions built from :class:`vigil.config.Settings`.

SQLite (the embedded deployment) gets WAL journaling, foreign keys, ``synchronous=NORMAL`` and a
busy timeout on every connection; PostgreSQL gets a pre-ping pool and a connect timeout.

PostgreSQL outages: while the server is down, checking out a connection fails at once
(refused) or after ``PG_CONNECT_TIMEOUT_S`` (unreachable host) with an ``OperationalError``,
which the API answers as 503. When it comes back nothing needs restarting: the pre-ping finds
the pooled connections the restart broke, the pool invalidates them and opens new ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from vigil.config import Settings
from vigil.errors import ConfigurationError

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: libpq's connect_timeout (seconds) unless the URL sets one: an unreachable database must turn
#: into a prompt 503 and a failed readiness probe, not a request hanging on TCP retries.
PG_CONNECT_TIMEOUT_S = 5


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def create_engine_for(database_url: str, **kwargs: Any) -> Engine:
    """An engine for ``database_url``; creates the SQLite file's directory when needed."""
    try:
        url = make_url(database_url)
    except Exception as exc:
        raise ConfigurationError(f"database url {database_url!r}: {exc}") from exc
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "connect_timeout" not in url.query:
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("connect_timeout", PG_CONNECT_TIMEOUT_S)
        kwargs["connect_args"] = connect_args
    return create_engine(url, **kwargs)


def engine_from_settings(settings: Settings, **kwargs: Any) -> Engine:
    return create_engine_for(settings.resolved_database_url(), **kwargs)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
