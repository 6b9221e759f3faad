"""The SQLite queue in its own file (``queue.db``, :mod:`vigil.bus.queue_store`): records there,
offsets in the service database, a pre-split backlog moved over at open, ``seq`` above every
committed offset, purge only behind the consumers, a vanished file refused. Real SQLite files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vigil.bus import offsets
from vigil.bus.queue import QueueRecord, SqlEventQueue, sqlite_changes
from vigil.bus.queue_store import SCHEMA_VERSION, open_sql_queue
from vigil.config import Settings, load_settings
from vigil.errors import ConfigurationError, UnavailableError
from vigil.store import create_engine_for, session_factory, upgrade

CONSUMER = "detection"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    settings = load_settings(home=home)
    upgrade(settings.resolved_database_url())
    return settings


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = create_engine_for(settings.resolved_database_url())
    yield engine
    engine.dispose()


def _open(settings: Settings, engine: Engine) -> SqlEventQueue:
    queue = open_sql_queue(settings, session_factory(engine), engine)
    queue.ensure_consumer(CONSUMER)
    return queue


def _rows(path: Path) -> list[tuple[int, str | None]]:
    with sqlite3.connect(path) as db:
        return [
            (int(seq), event_id)
            for seq, event_id in db.execute("SELECT seq, event_id FROM event_queue ORDER BY seq")
        ]


def _consume(queue: SqlEventQueue, sessions: sessionmaker[Session], upto: int) -> list[int]:
    """Read and ack the records up to ``upto`` in one committed transaction."""
    with sessions() as s:
        batch = [e for e in queue.read(s, consumer=CONSUMER, limit=10_000) if e.seq <= upto]
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.commit()
    return [e.seq for e in batch]


def _commit_offset(sessions: sessionmaker[Session], position: int) -> None:
    with sessions() as s:
        offsets.advance(s, name=CONSUMER, position=position)
        s.commit()


def _pending(queue: SqlEventQueue, sessions: sessionmaker[Session]) -> list[tuple[int, str | None]]:
    with sessions() as s:
        return [(e.seq, e.event_id) for e in queue.read(s, consumer=CONSUMER, limit=100)]


def _records(*ids: str | None) -> list[QueueRecord]:
    return [QueueRecord(i, b'{"a": 1}') for i in ids]


def test_records_go_to_queue_db_and_the_offset_stays_in_the_service_database(
    settings: Settings, engine: Engine
) -> None:
    queue = _open(settings, engine)
    sessions = session_factory(engine)
    assert queue.publish("t1", _records("a", "b", None)).accepted == 3
    home = settings.home
    assert [e for _, e in _rows(home / "queue.db")] == ["a", "b", None]
    assert _rows(home / "vigil.db") == []  # nothing in the service database's table
    assert queue.main_gate is not queue.write_gate
    assert _consume(queue, sessions, 2) == [1, 2]
    with sessions() as s:
        assert offsets.get(s, name=CONSUMER) == 2
    # a consumer transaction that rolls back moves nothing: the same records come again
    with sessions() as s:
        batch = queue.read(s, consumer=CONSUMER, limit=10)
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.rollback()
    assert _pending(queue, sessions) == [(3, None)]
    stats = queue.stats(consumer=CONSUMER)
    assert (stats.depth, stats.last_seq, stats.committed) == (1, 3, 2)
    assert queue.publish("t1", _records("a")).duplicates == 1
    with sqlite3.connect(home / "queue.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_moves_a_pre_split_backlog_keeping_seq_and_ids(
    settings: Settings, engine: Engine
) -> None:
    sessions = session_factory(engine)
    # An installation from before the split: the queue in the service database.
    legacy = SqlEventQueue(sessions)
    legacy.ensure_consumer(CONSUMER)
    legacy.publish("t1", _records("e1", "e2", "e3", None, "e5", "e6"))
    _consume(legacy, sessions, 2)
    legacy.purge(now=datetime.now(UTC) + timedelta(days=1), retention_s=0, idempotency_window_s=0)
    home = settings.home
    assert _rows(home / "vigil.db") == [(3, "e3"), (4, None), (5, "e5"), (6, "e6")]

    queue = _open(settings, engine)
    assert _rows(home / "queue.db") == [(3, "e3"), (4, None), (5, "e5"), (6, "e6")]
    assert _rows(home / "vigil.db") == []
    # exactly the unconsumed part is delivered, in order, once
    assert _consume(queue, sessions, 4) == [3, 4]
    assert _consume(queue, sessions, 100) == [5, 6]
    # the moved ids still count for idempotency; new records continue after the old seqs
    result = queue.publish("t1", _records("e5", "new"))
    assert (result.accepted, result.duplicate_indexes) == (1, (0,))
    last_seq, last_id = _rows(home / "queue.db")[-1]
    assert last_id == "new" and last_seq > 6  # (a skipped duplicate may leave a gap)
    # opening again (the detection child, a restart) moves nothing twice
    _open(settings, engine)
    assert [s for s, _ in _rows(home / "queue.db")] == [3, 4, 5, 6, last_seq]


def test_a_copy_interrupted_before_the_delete_is_not_doubled(
    settings: Settings, engine: Engine
) -> None:
    sessions = session_factory(engine)
    legacy = SqlEventQueue(sessions)
    legacy.publish("t1", _records("e1", "e2"))
    _open(settings, engine)
    # as if the process died after copying e1/e2 and before deleting them: they are back
    with sqlite3.connect(settings.home / "vigil.db") as db:
        db.execute(
            "INSERT INTO event_queue (seq, tenant_id, event_id, accepted_at, payload) "
            "VALUES (1, 't1', 'e1', '2026-01-01 00:00:00.000000', x'7b7d')"
        )
    _open(settings, engine)
    assert _rows(settings.home / "queue.db") == [(1, "e1"), (2, "e2")]
    assert _rows(settings.home / "vigil.db") == []


def test_a_new_queue_file_starts_above_every_committed_offset(
    settings: Settings, engine: Engine
) -> None:
    """E.g. queue.db deleted by hand after everything was processed: new records must not get
    seqs the consumer's offset already passed (it would skip them)."""
    sessions = session_factory(engine)
    _commit_offset(sessions, 500)
    queue = _open(settings, engine)
    queue.publish("t1", _records("x"))
    assert _pending(queue, sessions) == [(501, "x")]


def test_purge_deletes_only_consumed_records_and_only_in_queue_db(
    settings: Settings, engine: Engine
) -> None:
    sessions = session_factory(engine)
    queue = _open(settings, engine)
    queue.publish("t1", _records(*(f"e{i}" for i in range(1, 11))))
    _consume(queue, sessions, 6)
    removed = queue.purge(
        now=datetime.now(UTC) + timedelta(days=1), retention_s=0, idempotency_window_s=0
    )
    assert removed == 6
    assert [s for s, _ in _rows(settings.home / "queue.db")] == [7, 8, 9, 10]
    with sessions() as s:
        assert offsets.get(s, name=CONSUMER) == 6


def test_a_queue_file_newer_than_the_code_is_refused(settings: Settings, engine: Engine) -> None:
    _open(settings, engine)
    with sqlite3.connect(settings.home / "queue.db") as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ConfigurationError, match="newer"):
        _open(settings, engine)


def test_a_vanished_queue_file_is_unavailable_not_written_into(
    settings: Settings, engine: Engine
) -> None:
    queue = _open(settings, engine)
    queue.publish("t1", _records("a"))
    for name in ("queue.db", "queue.db-wal", "queue.db-shm"):
        (settings.home / name).unlink(missing_ok=True)
    with pytest.raises(UnavailableError):
        queue.publish("t1", _records("b"))
    with pytest.raises(UnavailableError):
        queue.stats(consumer=CONSUMER)
    queue.dispose()


def test_a_queue_file_older_than_the_offsets_continues_above_them(
    settings: Settings, engine: Engine
) -> None:
    """queue.db restored from a backup taken before vigil.db's: the restored offset is past
    its last seq, so new records must be numbered above the offset, not after the file's."""
    sessions = session_factory(engine)
    queue = _open(settings, engine)
    queue.publish("t1", _records("a", "b"))
    queue.dispose()
    _commit_offset(sessions, 40)
    queue = _open(settings, engine)
    queue.publish("t1", _records("c"))
    assert _pending(queue, sessions) == [(41, "c")]


def test_commit_watcher_of_the_service_engine_sees_publishes_into_queue_db(
    settings: Settings, engine: Engine
) -> None:
    """A detection thread in another process than ingest (role "worker") wakes on
    ``PRAGMA data_version`` of the queue's file, which is no longer the service database."""
    queue = _open(settings, engine)
    changes = sqlite_changes(engine)
    assert changes is not None
    try:
        assert not changes.changed()
        # another engine (as another process would have) publishes
        other = create_engine_for(settings.resolved_database_url())
        open_sql_queue(settings, session_factory(other), other).publish("t1", _records("p"))
        other.dispose()
        assert changes.changed()
    finally:
        changes.close()
        queue.dispose()
