"""Migrations 0006 (alerts) and 0007 (incidents) match the models and go down and up again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from vigil.store import create_engine_for, upgrade
from vigil.store.base import Base
from vigil.store.migrate import downgrade, import_models

OWN_TABLES = {
    "alerts",
    "alert_detections",
    "alert_transitions",
    "alert_comments",
    "incidents",
    "incident_alerts",
    "incident_timeline",
    "escalation_policies",
    "escalation_steps",
}


def _mentions_own_table(diff: object) -> bool:
    """Autogenerate diffs are tuples (or lists of tuples) whose parts name a table somewhere."""
    text = repr(diff)
    return any(f"'{name}'" in text for name in OWN_TABLES)


def test_models_and_migrations_agree(database_url: str) -> None:
    upgrade(database_url)
    import_models()
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    ours = [d for d in diffs if _mentions_own_table(d)]
    assert ours == []


def test_downgrade_and_upgrade_again(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, "0005_pipeline")
    engine = create_engine_for(database_url)
    try:
        assert not OWN_TABLES & set(inspect(engine).get_table_names())
        upgrade(database_url)
        assert set(inspect(engine).get_table_names()) >= OWN_TABLES
    finally:
        engine.dispose()
