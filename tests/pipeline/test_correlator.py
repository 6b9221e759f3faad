"""The correlator on both backends: correlation windows across detection workers, restarts,
redeliveries and rule reloads, with the real database and the real queue tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select

from tests.pipeline.conftest import (
    EXAMPLE_RULES,
    MANY_FAILED_LOGONS,
    failed_logon,
)
from vigil.bus import offsets
from vigil.bus.queue import QueueRecord, SqlEventQueue
from vigil.pipeline.correlator import Correlator
from vigil.pipeline.detector import Detector
from vigil.pipeline.models import CorrelationInput, CorrelationState, Detection
from vigil.pipeline.partition_locks import locks_for
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import DetectionPipeline, no_sink
from vigil.store import session_factory

IP = "203.0.113.7"
PER_IP = "5e1f3c2a-9b8d-4e7f-a6c5-1d2e3f4a5b6c"


@pytest.fixture
def registry() -> RuleRegistry:
    reg = RuleRegistry([EXAMPLE_RULES])
    reg.load()
    return reg


def pipeline(
    engine: Engine, registry: RuleRegistry, consumer: str = "detection"
) -> DetectionPipeline:
    sessions = session_factory(engine)
    return DetectionPipeline(
        sessions=sessions,
        queue=SqlEventQueue(sessions),
        detector=Detector(registry),
        sink=no_sink,
        consumer=consumer,
    )


def correlator(engine: Engine, registry: RuleRegistry, **options: object) -> Correlator:
    return Correlator(
        sessions=session_factory(engine),
        registry=registry,
        sink=no_sink,
        locks=locks_for(engine),
        rebalance_interval_s=0,
        **options,  # type: ignore[arg-type]
    )


def logons(user: str, seconds: range, ip: str = IP) -> list[QueueRecord]:
    return [QueueRecord(None, failed_logon(user, ip, s)) for s in seconds]


def correlations(engine: Engine, rule_id: str = MANY_FAILED_LOGONS) -> list[Detection]:
    with session_factory(engine)() as s:
        return list(
            s.scalars(
                select(Detection).where(
                    Detection.kind == "correlation", Detection.rule_id == rule_id
                )
            )
        )


def count(engine: Engine, model: type) -> int:
    with session_factory(engine)() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


def test_events_of_one_group_detected_by_two_workers_correlate_once(
    db_engine: Engine, registry: RuleRegistry
) -> None:
    first = pipeline(db_engine, registry, "detection")
    second = pipeline(db_engine, registry, "detection-b")  # another consumer: its own offset
    corr = correlator(db_engine, registry)
    first.queue.publish("t1", logons("bob", range(3)))
    first.run_once()
    second.run_once()  # reads the same three (a second consumer) but is not counted twice
    first.queue.publish("t1", logons("bob", range(3, 5)))
    second.run_once()  # only this worker sees the 4th and 5th
    assert corr.run_once() == 5  # three inputs from the first worker, two new from the second
    [hit] = correlations(db_engine)
    assert hit.tenant_id == "t1" and hit.level == "high"
    assert len(hit.event_ids) == 5
    # base detections are made by the detection workers (generate: true)
    assert count(db_engine, Detection) == 1 + 5


def test_redelivered_batch_adds_no_inputs(db_engine: Engine, registry: RuleRegistry) -> None:
    worker = pipeline(db_engine, registry)
    corr = correlator(db_engine, registry)
    worker.queue.publish("t1", logons("bob", range(3)))
    worker.run_once()
    with session_factory(db_engine)() as s:
        offsets.advance(s, name="detection", position=0)  # as after a Redis redelivery
        s.commit()
    assert worker.run_once().events == 3
    assert count(db_engine, CorrelationInput) == 3
    corr.run_once()
    assert correlations(db_engine) == []  # 3 + 3 would have reached 5
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    corr.run_once()
    assert len(correlations(db_engine)) == 1


@pytest.mark.parametrize("clean", [True, False], ids=["stopped", "crashed"])
def test_restarted_correlator_keeps_its_windows(
    db_engine: Engine, registry: RuleRegistry, clean: bool
) -> None:
    worker = pipeline(db_engine, registry)
    before = correlator(db_engine, registry, snapshot_interval_s=3600)
    worker.queue.publish("t1", logons("bob", range(3)))
    worker.run_once()
    assert before.run_once() == 3
    if clean:
        before.stop()  # final snapshot, partitions handed on
    else:
        before.locks.close()  # the process died: its locks go, nothing is written
    with session_factory(db_engine)() as s:
        state = s.get(CorrelationState, 0)
        assert state is not None and state.position == 3
        assert (state.snapshot_position, state.snapshot is not None) == (
            (3, True) if clean else (0, False)
        )
    after = correlator(db_engine, registry)
    # stopped: the snapshot holds the three; crashed: they are fed again from the inputs
    assert after.run_once() == (0 if clean else 3)
    assert correlations(db_engine) == []
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    after.run_once()
    assert len(correlations(db_engine)) == 1


def test_replay_after_a_crash_makes_no_second_detection(
    db_engine: Engine, registry: RuleRegistry
) -> None:
    worker = pipeline(db_engine, registry)
    before = correlator(db_engine, registry, snapshot_interval_s=3600)
    worker.queue.publish("t1", logons("bob", range(5)))
    worker.run_once()
    before.run_once()
    assert len(correlations(db_engine)) == 1
    before.locks.close()
    after = correlator(db_engine, registry)
    assert after.run_once() == 5  # replayed from the start: the hit is found again...
    assert len(correlations(db_engine)) == 1  # ...and is the same detection


def test_second_correlator_waits_for_the_owner(db_engine: Engine, registry: RuleRegistry) -> None:
    worker = pipeline(db_engine, registry)
    owner = correlator(db_engine, registry)
    standby = correlator(db_engine, registry)
    worker.queue.publish("t1", logons("bob", range(3)))
    worker.run_once()
    assert owner.run_once() == 3
    assert standby.run_once() == 0 and standby.status()["partitions"] == []
    owner.stop()
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    assert standby.run_once() == 2  # took the partition over from the snapshot
    assert len(correlations(db_engine)) == 1


def test_snapshot_covered_inputs_are_pruned(db_engine: Engine, registry: RuleRegistry) -> None:
    worker = pipeline(db_engine, registry)
    corr = correlator(db_engine, registry, retention_s=0, snapshot_interval_s=3600)
    worker.queue.publish("t1", logons("bob", range(3)))
    worker.run_once()
    corr.run_once()
    assert corr.prune() == 0  # no snapshot yet: every input may be needed for a replay
    corr.checkpoint()
    assert corr.prune() == 3
    corr.stop()
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    assert correlator(db_engine, registry).run_once() == 2
    assert len(correlations(db_engine)) == 1


def test_partitions_split_groups_and_every_group_fires(
    db_engine: Engine, registry: RuleRegistry
) -> None:
    worker = pipeline(db_engine, registry)
    worker.detector.partitions = 4
    corr = correlator(db_engine, registry, partitions=4)
    users = [f"user{n}" for n in range(8)]
    for user in users:
        worker.queue.publish("t1", logons(user, range(5)))
    worker.run_once()
    partitions: dict[str, set[int]] = {}
    with session_factory(db_engine)() as s:
        for number, body in s.execute(select(CorrelationInput.partition_no, CorrelationInput.body)):
            user = orjson.loads(body)["f"]["TargetUserName"]
            partitions.setdefault(user, set()).add(number)
    # all five inputs of a group are in one partition; the groups spread over several
    assert all(len(numbers) == 1 for numbers in partitions.values())
    assert len(set().union(*partitions.values())) > 1
    assert corr.run_once() == 40
    assert sorted(d.fields["TargetUserName"] for d in correlations(db_engine)) == users


FAILED_LOGON_FILE = "security_failed_logon.yml"


def test_rule_reload_keeps_the_state_of_unchanged_correlations(
    db_engine: Engine, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    per_ip = rules / "per_ip.yml"
    per_ip.write_text(
        f"""title: Failed Logons From One Address
id: {PER_IP}
correlation:
    type: event_count
    rules: [vigil_example_failed_logon]
    group-by: [IpAddress]
    timespan: 10m
    condition: {{gte: 4}}
    generate: true
level: medium
"""
    )
    registry = RuleRegistry([rules])
    registry.load()
    worker = pipeline(db_engine, registry)
    corr = correlator(db_engine, registry)
    worker.queue.publish("t1", logons("bob", range(3)))
    worker.run_once()
    corr.run_once()
    # Reload: per-IP's threshold drops to 3 (a new definition: its 3 events are forgotten,
    # or it would fire on the next one); the example correlation only changes its level,
    # which is not part of its definition, so its 3 events are kept.
    per_ip.write_text(per_ip.read_text().replace("gte: 4", "gte: 3"))
    example = rules / FAILED_LOGON_FILE
    example.write_text(example.read_text().replace("level: high", "level: critical"))
    report = registry.check()
    assert report is not None and report.ok and registry.current.version == 2
    worker.queue.publish("t1", logons("bob", range(3, 5)))
    worker.run_once()
    corr.run_once()
    [kept] = correlations(db_engine)
    assert kept.level == "critical" and len(kept.event_ids) == 5
    assert correlations(db_engine, PER_IP) == []
    # per-IP counts afresh from the reload: a third event fires it
    worker.queue.publish("t1", logons("eve", range(5, 6)))
    worker.run_once()
    corr.run_once()
    assert len(correlations(db_engine, PER_IP)) == 1
