"""Dead letters of the Redis Streams queue: each page of the list reads a bounded slice of the
stream (a cursor on the stream id, the tenant filter applied per slice), and the dead-letter
counter and gauge follow burials."""

from __future__ import annotations

import time
from typing import Any

import redis

from tests.bus.test_redis_queue import (  # noqa: F401 (fixtures)
    REDIS_URL,
    QueueFactory,
    _read,
    _records,
    make_queue,
    prefix,
)
from vigil.bus.dead_letters import PAGE_SCAN, list_dead_letters
from vigil.bus.redis_queue import RedisStreamsQueue
from vigil.obs.metrics import REGISTRY
from vigil.pipeline.worker import queue_housekeeping


def _bury_all(queue: RedisStreamsQueue, count: int) -> None:
    for _ in range(200):
        _read(queue)  # never acknowledged: buried after one delivery
        if queue.dead_letter_count() == count:
            return
        time.sleep(0.02)
    raise AssertionError("records were not dead-lettered")


def _copy(client: Any, stream: str, entry_id: str, times: int) -> None:
    """Append ``times`` copies of a dead letter (same fields) to the dead-letter stream."""
    [(_, fields)] = client.xrange(stream, entry_id, entry_id)
    pipe = client.pipeline(transaction=False)
    for _ in range(times):
        pipe.xadd(stream, fields)
    pipe.execute()


def test_a_page_reads_a_bounded_slice_of_the_stream(make_queue: QueueFactory) -> None:  # noqa: F811
    queue = make_queue(claim_idle_s=0.01, claim_interval_s=0.001, max_deliveries=1)
    queue.publish("t1", _records("a"))
    queue.publish("t2", _records("z"))
    _bury_all(queue, 2)
    dead = queue.settings.dead_letter_stream
    letters = {d.event_id: d.id for d in queue.dead_letters(tenant_id=None)}
    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        _copy(client, dead, letters["z"], 2 * PAGE_SCAN)  # another tenant's, between t1's two
        _copy(client, dead, letters["a"], 1)
    finally:
        client.close()
    total = 2 + 2 * PAGE_SCAN + 1
    pages = []
    after: str | None = None
    while True:
        page = list_dead_letters(queue=queue, tenant_id="t1", after=after, limit=10)
        pages.append(page)
        after = page.next_after
        if after is None:
            break
    found = [d for p in pages for d in p.items]
    assert [d.event_id for d in found] == ["a", "a"]
    assert all(d.tenant_id == "t1" for d in found)
    # the other tenant's letters were paged through, PAGE_SCAN entries a request at most
    assert len(pages) == -(-total // PAGE_SCAN)
    assert pages[1].items == [] and pages[1].next_after is not None
    # asking for fewer than there are: a cursor right after the last one returned
    first = list_dead_letters(queue=queue, tenant_id="t2", after=None, limit=3)
    assert len(first.items) == 3 and first.next_after == first.items[-1].id


def _value(name: str) -> float:
    return float(REGISTRY.get_sample_value(name) or 0.0)


def test_dead_letter_counter_and_gauge(make_queue: QueueFactory) -> None:  # noqa: F811
    queue = make_queue(claim_idle_s=0.01, claim_interval_s=0.001, max_deliveries=1)
    before = _value("vigil_queue_dead_lettered_total")
    queue.publish("t1", _records("a", "b", "c"))
    _bury_all(queue, 3)
    assert _value("vigil_queue_dead_lettered_total") == before + 3
    housekeeping = queue_housekeeping(
        queue, consumer="detection", retention_s=3600, idempotency_window_s=60
    )
    housekeeping()
    assert _value("vigil_queue_dead_letters") == 3
    queue.replay_dead_letter(queue.dead_letters(tenant_id="t1")[0].id, tenant_id="t1")
    housekeeping()
    assert _value("vigil_queue_dead_letters") == 2
