"""The durable event queue: SQL implementation on SQLite and PostgreSQL, and the memory double."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from vigil.bus.queue import EventQueue, QueueRecord, SqlEventQueue
from vigil.bus.queue_memory import MemoryEventQueue
from vigil.bus.queue_models import QueuedEventRow
from vigil.store import session_factory

CONSUMER = "test-consumer"


@pytest.fixture(params=["sql", "memory"])
def queue_and_sessions(
    request: pytest.FixtureRequest, db_engine: Engine
) -> Iterator[tuple[EventQueue, Engine]]:
    if request.param == "sql":
        queue: EventQueue = SqlEventQueue(session_factory(db_engine))
    else:
        queue = MemoryEventQueue()
    yield queue, db_engine


def _records(*ids: str | None) -> list[QueueRecord]:
    return [QueueRecord(i, f'{{"n": "{i}"}}'.encode()) for i in ids]


def test_publish_read_ack_in_order(queue_and_sessions: tuple[EventQueue, Engine]) -> None:
    queue, engine = queue_and_sessions
    woke: list[int] = []
    queue.add_listener(lambda: woke.append(1))
    result = queue.publish("t1", _records("a", None, "b"))
    assert (result.accepted, result.duplicates) == (3, 0)
    assert woke == [1]
    sessions = session_factory(engine)
    with sessions() as s:
        batch = queue.read(s, consumer=CONSUMER, limit=2)
        assert [e.event_id for e in batch] == ["a", None]
        assert [e.payload for e in batch] == [b'{"n": "a"}', b'{"n": "None"}']
        assert all(e.tenant_id == "t1" and e.accepted_at.tzinfo is not None for e in batch)
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.commit()
    stats = queue.stats(consumer=CONSUMER)
    assert (stats.depth, stats.last_seq) == (1, batch[-1].seq + 1)
    with sessions() as s:
        rest = queue.read(s, consumer=CONSUMER, limit=10)
        assert [e.event_id for e in rest] == ["b"]


def test_uncommitted_ack_replays_exactly_that_batch(
    queue_and_sessions: tuple[EventQueue, Engine],
) -> None:
    queue, engine = queue_and_sessions
    queue.publish("t1", _records("a", "b", "c"))
    sessions = session_factory(engine)
    with sessions() as s:
        first = queue.read(s, consumer=CONSUMER, limit=1)
        queue.ack(s, consumer=CONSUMER, batch=first)
        s.commit()
    with sessions() as s:
        second = queue.read(s, consumer=CONSUMER, limit=10)
        queue.ack(s, consumer=CONSUMER, batch=second)
        s.rollback()  # the consumer crashed before committing its work
    with sessions() as s:
        again = queue.read(s, consumer=CONSUMER, limit=10)
    assert [e.event_id for e in again] == ["b", "c"] == [e.event_id for e in second]


def test_event_ids_are_idempotent_per_tenant(
    queue_and_sessions: tuple[EventQueue, Engine],
) -> None:
    queue, _ = queue_and_sessions
    first = queue.publish("t1", _records("a", "b", None))
    again = queue.publish("t1", _records("a", "b", None, "c", "c"))
    other = queue.publish("t2", _records("a"))
    assert (first.accepted, first.duplicates) == (3, 0)
    # a, b already queued; the second "c" repeats the first within the batch
    assert (again.accepted, again.duplicates) == (2, 3)
    assert again.duplicate_indexes == (0, 1, 4)
    assert (other.accepted, other.duplicates) == (1, 0)
    assert queue.stats(consumer=CONSUMER).depth == 6


def test_unique_constraint_holds_without_the_precheck(db_session: Session) -> None:
    """The database itself refuses a second (tenant, event_id): idempotency is not a query."""
    from sqlalchemy.exc import IntegrityError

    now = datetime.now(UTC)
    db_session.add(QueuedEventRow(tenant_id="t", event_id="x", accepted_at=now, payload=b"{}"))
    db_session.flush()
    db_session.add(QueuedEventRow(tenant_id="t", event_id="x", accepted_at=now, payload=b"{}"))
    with pytest.raises(IntegrityError):
        db_session.flush()


def test_purge_keeps_unprocessed_and_idempotency_window(db_engine: Engine) -> None:
    sessions = session_factory(db_engine)
    queue = SqlEventQueue(sessions)
    queue.ensure_consumer(CONSUMER)
    queue.publish("t1", _records(None, "keep-id", None))
    old = datetime.now(UTC) - timedelta(hours=2)
    with sessions() as s:
        s.execute(update(QueuedEventRow).values(accepted_at=old))
        s.commit()
        batch = queue.read(s, consumer=CONSUMER, limit=2)  # process the first two only
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.commit()
    removed = queue.purge(now=datetime.now(UTC), retention_s=3600, idempotency_window_s=86400)
    assert removed == 1  # the processed record without id; "keep-id" guards idempotency
    assert queue.publish("t1", _records("keep-id")).duplicates == 1
    with sessions() as s:
        assert s.execute(select(func.count()).select_from(QueuedEventRow)).scalar_one() == 2
    removed = queue.purge(now=datetime.now(UTC), retention_s=3600, idempotency_window_s=3600)
    assert removed == 1  # the id is past its window now; the unprocessed row stays
    assert queue.stats(consumer=CONSUMER).depth == 1


def test_memory_purge_respects_offsets() -> None:
    queue = MemoryEventQueue()
    queue.publish("t", _records(None, "x"))
    assert (
        queue.purge(
            now=datetime.now(UTC) + timedelta(days=2), retention_s=1, idempotency_window_s=1
        )
        == 0
    )  # nothing processed yet


def test_seq_is_never_reused_after_purging_the_last_row(db_engine: Engine) -> None:
    """SQLite would reuse max(rowid)+1 without AUTOINCREMENT; a consumer past it would skip."""
    sessions = session_factory(db_engine)
    queue = SqlEventQueue(sessions)
    queue.ensure_consumer(CONSUMER)
    queue.publish("t", _records(None))
    with sessions() as s:
        batch = queue.read(s, consumer=CONSUMER, limit=10)
        queue.ack(s, consumer=CONSUMER, batch=batch)
        s.commit()
    assert (
        queue.purge(
            now=datetime.now(UTC) + timedelta(days=1), retention_s=1, idempotency_window_s=1
        )
        == 1
    )
    queue.publish("t", _records(None))
    with sessions() as s:
        fresh = queue.read(s, consumer=CONSUMER, limit=10)
    assert len(fresh) == 1 and fresh[0].seq > batch[-1].seq
