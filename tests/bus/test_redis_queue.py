"""The event queue on Redis Streams, against the real Redis (127.0.0.1:6379).

Every test works on streams of its own (a unique prefix) and deletes its keys afterwards.
The queue never touches the database session it is given, so ``None`` stands in for it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from vigil.bus.queue import QueuedEvent, QueueRecord
from vigil.bus.redis_config import RedisQueueSettings
from vigil.bus.redis_queue import RedisStreamsQueue, id_to_seq, redis_queue_for, seq_to_id
from vigil.config import load_settings
from vigil.errors import NotFoundError, UnavailableError

REDIS_URL = "redis://127.0.0.1:6379/0"
NO_SESSION: Any = None

QueueFactory = Callable[..., RedisStreamsQueue]


@pytest.fixture
def prefix() -> Iterator[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    name = f"vigil-test:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def make_queue(prefix: str) -> Iterator[QueueFactory]:
    made: list[RedisStreamsQueue] = []

    def make(name: str = "worker-a", **overrides: Any) -> RedisStreamsQueue:
        cfg = RedisQueueSettings(
            stream=f"{prefix}:events",
            dead_letter_stream=f"{prefix}:events:dead",
            block_ms=overrides.pop("block_ms", 10),
            **overrides,
        )
        queue = RedisStreamsQueue(REDIS_URL, cfg, name=name, idempotency_window_s=60)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


def _records(*ids: str | None) -> list[QueueRecord]:
    return [QueueRecord(i, f'{{"n": "{i}"}}'.encode()) for i in ids]


def _read(queue: RedisStreamsQueue, limit: int = 100) -> list[QueuedEvent]:
    return queue.read(NO_SESSION, consumer="detection", limit=limit)


def _ack(queue: RedisStreamsQueue, batch: list[QueuedEvent]) -> None:
    queue.ack(NO_SESSION, consumer="detection", batch=batch)
    queue.acknowledged(consumer="detection", batch=batch)


def test_publish_read_ack_round_trip(make_queue: QueueFactory) -> None:
    queue = make_queue()
    queue.ensure_consumer("detection")
    woke: list[int] = []
    queue.add_listener(lambda: woke.append(1))
    result = queue.publish("t1", _records("a", None, "b"))
    assert (result.accepted, result.duplicates) == (3, 0)
    assert woke == [1]
    batch = _read(queue, limit=2)
    assert [e.event_id for e in batch] == ["a", None]
    assert [e.payload for e in batch] == [b'{"n": "a"}', b'{"n": "None"}']
    assert all(e.tenant_id == "t1" and e.accepted_at.tzinfo is not None for e in batch)
    assert batch[0].seq < batch[1].seq
    _ack(queue, batch)
    stats = queue.stats(consumer="detection")
    assert stats.depth == 1
    assert stats.committed == batch[-1].seq
    rest = _read(queue)
    assert [e.event_id for e in rest] == ["b"]
    assert queue.stats(consumer="detection").last_seq == rest[0].seq
    # Delivered but not acknowledged still counts as work left.
    assert queue.stats(consumer="detection").depth == 1
    _ack(queue, rest)
    assert queue.stats(consumer="detection").depth == 0
    assert _read(queue) == []


def test_group_created_later_still_reads_earlier_records(make_queue: QueueFactory) -> None:
    producer = make_queue("api")
    producer.publish("t1", _records("early"))
    worker = make_queue("worker")
    assert [e.event_id for e in _read(worker)] == ["early"]


def test_idempotency_per_tenant_and_within_a_request(make_queue: QueueFactory) -> None:
    queue = make_queue(publish_chunk=2)  # indexes must survive the split into scripts
    first = queue.publish("t1", _records("a", "b", "a", None, "c"))
    assert (first.accepted, first.duplicates, first.duplicate_indexes) == (4, 1, (2,))
    again = queue.publish("t1", _records("x", "c", None, "a"))
    assert (again.accepted, again.duplicate_indexes) == (2, (1, 3))
    other = queue.publish("t2", _records("a"))
    assert other.accepted == 1
    events = _read(queue)
    assert [(e.tenant_id, e.event_id) for e in events] == [
        ("t1", "a"),
        ("t1", "b"),
        ("t1", None),
        ("t1", "c"),
        ("t1", "x"),
        ("t1", None),
        ("t2", "a"),
    ]
    # Acknowledged and trimmed records are still remembered for the idempotency window.
    _ack(queue, events)
    from datetime import UTC, datetime, timedelta

    # A second ahead: stream ids carry Redis' clock in ms and MINID keeps ids of that very ms,
    # so "now" read here in the same (or, after a clock step, an earlier) ms kept some (CI: 4 of 7).
    later = datetime.now(UTC) + timedelta(seconds=1)
    trimmed = queue.purge(now=later, retention_s=0, idempotency_window_s=60)
    assert trimmed == 7
    assert queue.publish("t1", _records("a")).duplicates == 1


def test_records_of_a_dead_consumer_are_taken_over(make_queue: QueueFactory) -> None:
    dying = make_queue("worker-dies")
    survivor = make_queue("worker-survives", claim_idle_s=0.2, claim_interval_s=0.01)
    dying.publish("t1", _records("a", "b", "c"))
    held = _read(dying, limit=2)  # ... and the worker dies without acknowledging
    assert [e.event_id for e in held] == ["a", "b"]
    own = _read(survivor)
    assert [e.event_id for e in own] == ["c"]  # too early to take a and b
    _ack(survivor, own)
    assert _read(survivor) == []
    time.sleep(0.3)
    taken = _read(survivor)
    assert [(e.event_id, e.seq) for e in taken] == [(e.event_id, e.seq) for e in held]
    assert survivor.stats(consumer="detection").depth == 2  # taken over, not yet acknowledged
    _ack(survivor, taken)
    assert survivor.stats(consumer="detection").depth == 0
    assert _read(dying) == []  # the dead worker's claim is gone


def test_poison_record_goes_to_dead_letters_alone_and_replays(make_queue: QueueFactory) -> None:
    queue = make_queue(
        claim_idle_s=0.02, claim_interval_s=0.01, max_deliveries=4, solo_after_deliveries=3
    )
    queue.publish("t1", _records("good-1", "poison", "good-2"))
    processed: list[str | None] = []
    for _ in range(200):
        batch = _read(queue)
        if any(e.event_id == "poison" for e in batch):
            # The whole transaction fails and rolls back: nothing of it is acknowledged.
            queue.failed(consumer="detection", batch=batch, error="ValueError: bad field")
        else:
            processed.extend(e.event_id for e in batch)
            _ack(queue, batch)
        if queue.dead_letters(tenant_id=None) and queue.stats(consumer="detection").depth == 0:
            break
        time.sleep(0.03)
    assert sorted(processed, key=str) == ["good-1", "good-2"]
    letters = queue.dead_letters(tenant_id="t1")
    assert [(d.event_id, d.deliveries, d.error) for d in letters] == [
        ("poison", 4, "ValueError: bad field")
    ]
    assert letters[0].payload == b'{"n": "poison"}'
    assert queue.dead_letters(tenant_id="t2") == []
    with pytest.raises(NotFoundError):
        queue.replay_dead_letter(letters[0].id, tenant_id="t2")
    with pytest.raises(NotFoundError):
        queue.replay_dead_letter("0-1", tenant_id="t1")
    with pytest.raises(NotFoundError):
        queue.replay_dead_letter("not-an-id", tenant_id="t1")

    origin_seq = id_to_seq(letters[0].origin)
    queue.replay_dead_letter(letters[0].id, tenant_id="t1")
    assert queue.dead_letters(tenant_id=None) == []
    replayed = _read(queue)
    # Same identity as the first delivery: the detections it makes keep their ids.
    assert [(e.event_id, e.seq) for e in replayed] == [("poison", origin_seq)]
    _ack(queue, replayed)
    assert queue.stats(consumer="detection").depth == 0


def test_dead_letter_pages(make_queue: QueueFactory) -> None:
    queue = make_queue(claim_idle_s=0.01, claim_interval_s=0.001, max_deliveries=1)
    queue.publish("t1", _records("a", "b", "c"))
    queue.publish("t2", _records("z"))
    for _ in range(100):
        _read(queue)  # never acknowledged
        if len(queue.dead_letters(tenant_id=None)) == 4:
            break
        time.sleep(0.02)
    first = queue.dead_letters(tenant_id="t1", limit=2)
    second = queue.dead_letters(tenant_id="t1", after=first[-1].id, limit=2)
    assert [d.event_id for d in first + second] == ["a", "b", "c"]
    assert all(d.deliveries == 1 and "not acknowledged" in d.error for d in first)


def test_backpressure_refuses_publishing_past_the_backlog(make_queue: QueueFactory) -> None:
    queue = make_queue(max_backlog=3, backlog_check_s=0.001, retry_after_s=7)
    assert queue.publish("t1", _records(*"abcd")).accepted == 4
    time.sleep(0.01)
    with pytest.raises(UnavailableError) as refused:
        queue.publish("t1", _records("e"))
    assert refused.value.retry_after == 7
    batch = _read(queue, limit=2)
    _ack(queue, batch)
    time.sleep(0.01)
    assert queue.publish("t1", _records("e")).accepted == 1


def test_unreachable_redis_is_unavailable_not_a_crash() -> None:
    queue = RedisStreamsQueue("redis://127.0.0.1:1/0", RedisQueueSettings(stream="x"))
    with pytest.raises(UnavailableError):
        queue.publish("t1", _records("a"))
    # XACK after a commit must not fail the batch: the records come back, harmlessly.
    queue.acknowledged(consumer="detection", batch=[])


def test_stream_lost_under_a_reader_is_recreated(make_queue: QueueFactory, prefix: str) -> None:
    queue = make_queue()
    queue.publish("t1", _records("a"))
    assert len(_read(queue)) == 1
    redis.Redis.from_url(REDIS_URL).delete(f"{prefix}:events")  # Redis restarted empty
    assert _read(queue) == []
    queue.publish("t1", _records(None))
    assert [e.event_id for e in _read(queue)] == [None]


def test_purge_keeps_unacknowledged_and_forgets_idle_consumers(make_queue: QueueFactory) -> None:
    from datetime import UTC, datetime

    gone = make_queue("gone", consumer_forget_s=0.001)
    gone.publish("t1", _records("a", "b"))
    _ack(gone, _read(gone, limit=1))
    queue = make_queue("stays", consumer_forget_s=0.001)
    held = _read(queue)  # b stays pending with "stays"
    time.sleep(0.01)
    assert queue.purge(now=datetime.now(UTC), retention_s=0, idempotency_window_s=0) == 1
    consumers = queue.redis.xinfo_consumers(queue.stream, "vigil-workers")
    assert [c["name"] for c in consumers] == [b"stays"]
    _ack(queue, held)
    assert queue.purge(now=datetime.now(UTC), retention_s=3600, idempotency_window_s=0) == 0


def test_selected_by_queue_url_only() -> None:
    assert redis_queue_for(load_settings()) is None
    selected = redis_queue_for(load_settings(queue_url=REDIS_URL))
    assert isinstance(selected, RedisStreamsQueue)
    assert (selected.stream, selected.settings.group) == ("vigil:events", "vigil-workers")
    selected.close()


@given(
    st.lists(
        st.tuples(st.integers(0, 2**42), st.integers(0, 2**20 - 1)),
        min_size=2,
        max_size=20,
    )
)
def test_stream_ids_map_to_ordered_sequence_numbers(ids: list[tuple[int, int]]) -> None:
    texts = [f"{ms}-{n}" for ms, n in ids]
    seqs = [id_to_seq(t) for t in texts]
    assert [seq_to_id(s) for s in seqs] == texts
    assert sorted(ids) == [ids[i] for i in sorted(range(len(ids)), key=seqs.__getitem__)]
    assert all(s < 2**63 for s in seqs)
