"""Migration 0012 (correlation inputs and state) matches the models and goes down and up."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from vigil.store import create_engine_for, upgrade
from vigil.store.base import Base
from vigil.store.migrate import downgrade, import_models

TABLES = {"correlation_inputs", "correlation_state"}


def test_models_match_the_migration(migrated_url: str) -> None:
    import_models()
    engine = create_engine_for(migrated_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert [d for d in diffs if any(f"'{name}'" in repr(d) for name in TABLES)] == []


def test_downgrade_and_upgrade_again(migrated_url: str) -> None:
    downgrade(migrated_url, "0011_identity_epoch")
    engine = create_engine_for(migrated_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
        upgrade(migrated_url)
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
