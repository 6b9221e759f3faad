"""Purging the SQL queue: in chunks (one short write-gate hold each), records without an id
after retention, ids after the idempotency window, never a record a consumer has not processed;
later purges do not rescan what earlier ones cleared."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker

from vigil.bus import offsets
from vigil.bus import queue as queue_module
from vigil.bus.queue import QueueRecord, SqlEventQueue
from vigil.bus.queue_gate import NoGate
from vigil.bus.queue_models import QueuedEventRow
from vigil.store import session_factory

CONSUMER = "detection"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class CountingGate(NoGate):
    def __init__(self) -> None:
        self.holds = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.holds += 1
        yield


def _publish(queue: SqlEventQueue, ids: list[str | None]) -> None:
    queue.publish("t1", [QueueRecord(i, b'{"a": 1}') for i in ids])


def _age(sessions: sessionmaker[Session], seqs: range | list[int], at: datetime) -> None:
    with sessions() as s:
        s.execute(
            update(QueuedEventRow).where(QueuedEventRow.seq.in_(list(seqs))).values(accepted_at=at)
        )
        s.commit()


def _process_up_to(queue: SqlEventQueue, sessions: sessionmaker[Session], seq: int) -> None:
    with sessions() as s:
        batch = [e for e in queue.read(s, consumer=CONSUMER, limit=10_000) if e.seq <= seq]
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.commit()


def _left(sessions: sessionmaker[Session]) -> list[tuple[int, str | None]]:
    with sessions() as s:
        rows = s.execute(
            select(QueuedEventRow.seq, QueuedEventRow.event_id).order_by(QueuedEventRow.seq)
        )
        return [(seq, event_id) for seq, event_id in rows]


@pytest.fixture
def setup(db_engine: Engine) -> tuple[SqlEventQueue, sessionmaker[Session], CountingGate]:
    sessions = session_factory(db_engine)
    gate = CountingGate()
    queue = SqlEventQueue(sessions, gate=gate)
    queue.ensure_consumer(CONSUMER)
    return queue, sessions, gate


def test_retention_windows_and_unprocessed_records(
    setup: tuple[SqlEventQueue, sessionmaker[Session], CountingGate],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue, sessions, gate = setup
    monkeypatch.setattr(queue_module, "PURGE_CHUNK", 3)
    # seq 1-10: old, ids at 2, 5 and 8; 11-12 recent; 13-14 old but not processed yet
    _publish(queue, [None, "a", None, None, "b", None, None, "c", None, None, None, None])
    _publish(queue, [None, "d"])
    _age(sessions, range(1, 11), NOW - timedelta(hours=2))
    _age(sessions, range(11, 13), NOW - timedelta(seconds=30))
    _age(sessions, range(13, 15), NOW - timedelta(hours=2))
    _process_up_to(queue, sessions, 12)
    gate.holds = 0

    removed = queue.purge(now=NOW, retention_s=600, idempotency_window_s=86_400)
    assert removed == 7
    assert gate.holds == 3  # 7 records in chunks of 3
    kept = [(2, "a"), (5, "b"), (8, "c"), (11, None), (12, None), (13, None), (14, "d")]
    assert _left(sessions) == kept

    # The ids' window passes; the recent records age past retention; 13-14 get processed.
    _process_up_to(queue, sessions, 14)
    later = NOW + timedelta(days=2)
    _age(sessions, range(11, 15), later - timedelta(hours=1))
    assert queue.purge(now=later, retention_s=600, idempotency_window_s=86_400) == 6
    assert _left(sessions) == [(14, "d")]  # its window has not passed yet


def test_a_later_purge_reaches_records_its_predecessor_left(
    setup: tuple[SqlEventQueue, sessionmaker[Session], CountingGate],
) -> None:
    queue, sessions, _gate = setup
    _publish(queue, [None, None, None])
    _age(sessions, range(1, 4), NOW - timedelta(hours=2))
    _process_up_to(queue, sessions, 2)
    assert queue.purge(now=NOW, retention_s=600, idempotency_window_s=3600) == 2
    _publish(queue, [None])
    _age(sessions, [4], NOW - timedelta(hours=1))
    _process_up_to(queue, sessions, 4)
    assert queue.purge(now=NOW, retention_s=600, idempotency_window_s=3600) == 2
    assert _left(sessions) == []


def test_only_the_queue_consumers_bound_the_purge(
    setup: tuple[SqlEventQueue, sessionmaker[Session], CountingGate],
) -> None:
    queue, sessions, _gate = setup
    with sessions() as s:  # an outbox reader far behind, in the same offsets table
        offsets.advance(s, name="notify", position=1)
        s.commit()
    _publish(queue, [None] * 5)
    _age(sessions, range(1, 6), NOW - timedelta(hours=2))
    # A queue told of no consumer (a process that never read it) deletes nothing.
    stranger = SqlEventQueue(sessions)
    _process_up_to(queue, sessions, 5)
    assert stranger.purge(now=NOW, retention_s=600, idempotency_window_s=3600) == 0
    assert queue.purge(now=NOW, retention_s=600, idempotency_window_s=3600) == 5
