"""Alembic environment: runs online against the configured URL (or a given connection)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from vigil.store.base import Base
from vigil.store.engine import create_engine_for
from vigil.store.migrate import import_models

import_models()
config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("alembic: no sqlalchemy.url configured")
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("alembic: offline (SQL script) mode is not supported; run online")
run_migrations_online()
