"""Storage: engines with the SQLite pragmas, and migrations on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from vigil.config import Settings
from vigil.store import create_engine_for, engine_from_settings, session_factory, session_scope
from vigil.store.migrate import current_heads, downgrade, head_revision, upgrade

LEDGER_TABLES = {
    "audit_head",
    "audit_entries",
    "audit_nodes",
    "audit_checkpoints",
    "audit_keys",
    "audit_archives",
}


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = engine_from_settings(Settings(home=tmp_path / "home"))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    finally:
        engine.dispose()
    assert (tmp_path / "home" / "vigil.db").exists()


def test_upgrade_is_idempotent_and_reversible(database_url: str) -> None:
    upgrade(database_url)
    upgrade(database_url)
    assert current_heads(database_url) == [head_revision()]
    engine = create_engine_for(database_url)
    try:
        assert set(inspect(engine).get_table_names()) >= LEDGER_TABLES
        with engine.connect() as conn:
            assert conn.execute(text("SELECT size FROM audit_head WHERE id = 1")).scalar() == 0
        downgrade(database_url, "base")
        assert not LEDGER_TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_session_scope_commits_and_rolls_back(migrated_url: str) -> None:
    engine = create_engine_for(migrated_url)
    factory = session_factory(engine)
    try:
        with session_scope(factory) as s:
            s.execute(text("UPDATE audit_head SET origin = 'a' WHERE id = 1"))
        try:
            with session_scope(factory) as s:
                s.execute(text("UPDATE audit_head SET origin = 'b' WHERE id = 1"))
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        with session_scope(factory) as s:
            assert s.execute(text("SELECT origin FROM audit_head")).scalar() == "a"
    finally:
        engine.dispose()
