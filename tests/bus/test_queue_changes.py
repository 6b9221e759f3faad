"""Cross-process wake-up on SQLite: ``PRAGMA data_version`` tells a detection worker that
another connection (another process) committed, so it need not wait for its idle poll."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine

from vigil.bus.queue import QueueRecord, SqlEventQueue, SqliteChanges, sqlite_changes
from vigil.pipeline.host import CommitWake
from vigil.store import create_engine_for, session_factory, upgrade


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'vigil.db'}"
    upgrade(url)
    return create_engine_for(url)


def _publish(engine: Engine) -> None:
    SqlEventQueue(session_factory(engine)).publish("t1", [QueueRecord(None, b'{"a": 1}')])


def test_changed_after_a_commit_by_another_connection_only(sqlite_engine: Engine) -> None:
    changes = sqlite_changes(sqlite_engine)
    assert isinstance(changes, SqliteChanges)
    assert not changes.changed()
    database = sqlite_engine.url.database
    assert database is not None
    with sqlite3.connect(database) as reader:
        reader.execute("SELECT count(*) FROM event_queue").fetchone()
    assert not changes.changed()  # reading commits nothing
    _publish(sqlite_engine)
    assert changes.changed()
    assert not changes.changed()  # reported once
    changes.close()


def test_only_sqlite_files_are_watched(tmp_path: Path) -> None:
    assert sqlite_changes(create_engine_for("sqlite://")) is None
    assert sqlite_changes(create_engine_for("postgresql+psycopg://u@127.0.0.1:1/x")) is None


def test_commit_wake_ends_the_wait_on_a_commit_elsewhere(sqlite_engine: Engine) -> None:
    changes = sqlite_changes(sqlite_engine)
    assert changes is not None
    wake = CommitWake(changes, step_s=0.005)
    assert wake.wait(0.05) is False  # nothing happened: the whole timeout passes
    publisher = threading.Timer(0.1, _publish, args=(sqlite_engine,))
    publisher.start()
    # Without the commit this would wait the full minute (and fail).
    assert wake.wait(60) is True
    publisher.join()
    assert not wake.is_set()  # woken by the commit, not by set()
    wake.set()
    assert wake.wait(60) is True and wake.is_set()
    wake.clear()
    assert not wake.is_set()
