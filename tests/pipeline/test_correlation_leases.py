"""Correlation partition leases on PostgreSQL: an owner that stops renewing (frozen) loses its
partition to another correlator, and when it wakes it writes nothing (the lease's epoch fences
its step) and drops the partition."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, select, text

from tests.pipeline.conftest import EXAMPLE_RULES
from tests.pipeline.test_correlator import correlations, logons, pipeline
from vigil.pipeline.correlator import Correlator, PartitionLost
from vigil.pipeline.models import CorrelationState
from vigil.pipeline.partition_locks import locks_for
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import DetectionPipeline, no_sink
from vigil.store import create_engine_for, session_factory
from vigil.store.migrate import upgrade

pytestmark = pytest.mark.postgres

LEASE_S = 0.5


@pytest.fixture
def pg_engine(pg_schema_url: str) -> Iterator[Engine]:
    upgrade(pg_schema_url)
    engine = create_engine_for(pg_schema_url)
    yield engine
    engine.dispose()


def leased_correlator(engine: Engine, registry: RuleRegistry) -> Correlator:
    return Correlator(
        sessions=session_factory(engine),
        registry=registry,
        sink=no_sink,
        locks=locks_for(engine, lease_s=LEASE_S),
        rebalance_interval_s=0,
        lease_s=LEASE_S,
    )


def eventually(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def state(engine: Engine) -> tuple[int, str | None, object]:
    with session_factory(engine)() as s:
        row = s.execute(
            select(CorrelationState.position, CorrelationState.owner, CorrelationState.updated_at)
        ).one()
        return int(row[0]), row[1], row[2]


def taken_over(
    engine: Engine, *, inputs: int
) -> tuple[RuleRegistry, DetectionPipeline, Correlator, Correlator]:
    """A correlator (`frozen`) that correlated ``inputs`` failed logons and then stopped
    renewing, and the correlator (`other`) that took its partition over at expiry."""
    registry = RuleRegistry([EXAMPLE_RULES])
    registry.load()
    worker = pipeline(engine, registry)
    frozen = leased_correlator(engine, registry)
    other = leased_correlator(engine, registry)
    worker.queue.publish("t1", logons("bob", range(inputs)))
    worker.run_once()
    assert frozen.run_once() == inputs
    assert other.run_once() == 0 and other.status()["partitions"] == []  # held by `frozen`
    eventually(lambda: other.run_once() >= 0 and other.status()["partitions"] == [0], "take-over")
    return registry, worker, frozen, other


def test_frozen_owner_is_taken_over_and_fenced(pg_engine: Engine) -> None:
    registry, worker, frozen, other = taken_over(pg_engine, inputs=3)
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    eventually(lambda: other.run_once() == 0 and len(correlations(pg_engine)) == 1, "the hit")
    before = state(pg_engine)
    assert before[1] == other.owner
    # The frozen owner wakes in the middle of a step: it would feed the inputs again, but its
    # epoch is gone, so the transaction is rolled back before anything is written.
    with pytest.raises(PartitionLost):
        frozen._step(frozen._parts[0], registry.current)
    assert state(pg_engine) == before
    frozen.run_once()  # its next round drops the partition
    assert frozen.status()["partitions"] == []
    assert state(pg_engine) == before
    assert len(correlations(pg_engine)) == 1
    with pg_engine.connect() as conn:
        epoch = conn.execute(
            text("SELECT epoch FROM leases WHERE name = 'correlation-partition:0'")
        ).scalar_one()
    assert epoch == 2  # taken once by each


def test_lost_lease_found_at_renewal_drops_the_partition_unwritten(pg_engine: Engine) -> None:
    _registry, _worker, frozen, _other = taken_over(pg_engine, inputs=2)
    before = state(pg_engine)
    frozen.rebalance()  # renews: finds partition 0 taken over, drops it, cannot take it back
    assert frozen.status()["partitions"] == []
    assert state(pg_engine) == before
