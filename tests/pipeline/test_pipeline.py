"""The detection pipeline on both backends: queue → detections, exactly once in effect."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from tests.pipeline.conftest import (
    BENIGN,
    ENCODED_PS_RULE,
    EXAMPLE_RULES,
    FAILED_LOGON_RULE,
    MALICIOUS,
    MANY_FAILED_LOGONS,
    failed_logon,
)
from vigil.alerts.intake import DetectionRecord
from vigil.bus import offsets
from vigil.bus.queue import QueueRecord, SqlEventQueue
from vigil.pipeline.correlator import Correlator
from vigil.pipeline.detector import Detector
from vigil.pipeline.models import Detection, RuleSetting
from vigil.pipeline.partition_locks import locks_for
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import DetectionPipeline, no_sink
from vigil.store import session_factory


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.calls: list[list[DetectionRecord]] = []

    def __call__(
        self, session: Session, *, detections: Sequence[DetectionRecord], now: datetime
    ) -> None:
        self.calls.append(list(detections))
        if self.fail:
            raise RuntimeError("alerts unavailable")


@pytest.fixture(scope="module")
def registry() -> RuleRegistry:
    reg = RuleRegistry([EXAMPLE_RULES])
    reg.load()
    return reg


def _pipeline(engine: Engine, registry: RuleRegistry, sink: object = no_sink) -> DetectionPipeline:
    sessions = session_factory(engine)
    return DetectionPipeline(
        sessions=sessions,
        queue=SqlEventQueue(sessions),
        detector=Detector(registry),
        sink=sink,  # type: ignore[arg-type]
        consumer="detection",
    )


def _detections(engine: Engine) -> list[Detection]:
    with session_factory(engine)() as s:
        return list(s.scalars(select(Detection).order_by(Detection.event_seq)))


def test_malicious_event_detected_benign_not(db_engine: Engine, registry: RuleRegistry) -> None:
    sink = RecordingSink()
    pipeline = _pipeline(db_engine, registry, sink)
    pipeline.queue.publish("t1", [QueueRecord("e1", MALICIOUS), QueueRecord(None, BENIGN)])
    report = pipeline.run_once()
    assert report.events == 2
    assert report.detections == {"high": 1}
    rows = _detections(db_engine)
    assert [(r.rule_id, r.level, r.kind, r.event_ids) for r in rows] == [
        (ENCODED_PS_RULE, "high", "rule", ["e1"])
    ]
    assert rows[0].fields["CommandLine"].startswith("powershell.exe")
    [[record]] = sink.calls
    assert record.tenant_id == "t1" and record.event_ids == ("e1",)
    assert record.tags == ("attack.execution", "attack.t1059.001")
    assert pipeline.run_once().events == 0  # the offset moved


def test_failed_transaction_replays_and_detects_once(
    db_engine: Engine, registry: RuleRegistry
) -> None:
    failing = RecordingSink(fail=True)
    pipeline = _pipeline(db_engine, registry, failing)
    pipeline.queue.publish("t1", [QueueRecord(None, MALICIOUS)])
    with pytest.raises(RuntimeError):
        pipeline.run_once()
    assert _detections(db_engine) == []  # nothing of the failed batch survived
    working = RecordingSink()
    pipeline.sink = working
    assert pipeline.run_once().events == 1
    pipeline.queue.publish("t1", [QueueRecord(None, BENIGN)])
    pipeline.run_once()
    assert len(_detections(db_engine)) == 1
    assert [len(c) for c in working.calls] == [1]


def test_redelivered_batch_makes_no_second_detection(
    db_engine: Engine, registry: RuleRegistry
) -> None:
    """At-least-once delivery (the offset moved back, as after a Redis redelivery)."""
    sink = RecordingSink()
    pipeline = _pipeline(db_engine, registry, sink)
    pipeline.queue.publish("t1", [QueueRecord(None, MALICIOUS)])
    pipeline.run_once()
    with session_factory(db_engine)() as s:
        offsets.advance(s, name="detection", position=0)
        s.commit()
    assert pipeline.run_once().events == 1
    assert len(_detections(db_engine)) == 1
    assert [len(c) for c in sink.calls] == [1]


def test_correlation_per_tenant(db_engine: Engine, registry: RuleRegistry) -> None:
    pipeline = _pipeline(db_engine, registry)
    correlator = Correlator(
        sessions=session_factory(db_engine),
        registry=registry,
        sink=no_sink,
        locks=locks_for(db_engine),
    )
    five = [QueueRecord(None, failed_logon("bob", "203.0.113.7", s)) for s in range(5)]
    pipeline.queue.publish("t1", five[:3])
    pipeline.queue.publish("t2", five[3:])  # another tenant: never counts with t1's
    pipeline.run_once()
    correlator.run_once()
    assert not [d for d in _detections(db_engine) if d.kind == "correlation"]
    pipeline.queue.publish("t1", five[3:])
    pipeline.run_once()
    correlator.run_once()
    corr = [d for d in _detections(db_engine) if d.kind == "correlation"]
    assert [(d.tenant_id, d.rule_id, d.level) for d in corr] == [("t1", MANY_FAILED_LOGONS, "high")]
    assert len(corr[0].event_ids) == 5
    # generate: true keeps the base rule's own detections
    base = [d for d in _detections(db_engine) if d.rule_id == FAILED_LOGON_RULE]
    assert len(base) == 7


def test_tenant_overrides_disable_and_relevel(db_engine: Engine, registry: RuleRegistry) -> None:
    now = datetime.now(UTC)
    with session_factory(db_engine)() as s:
        s.add(
            RuleSetting(
                tenant_id="t1",
                rule_id=ENCODED_PS_RULE,
                enabled=False,
                updated_at=now,
                updated_by="user:x",
            )
        )
        s.add(
            RuleSetting(
                tenant_id="t2",
                rule_id=ENCODED_PS_RULE,
                enabled=True,
                level="critical",
                suppression_window_s=60.0,
                updated_at=now,
                updated_by="user:x",
            )
        )
        s.commit()
    sink = RecordingSink()
    pipeline = _pipeline(db_engine, registry, sink)
    pipeline.queue.publish("t1", [QueueRecord(None, MALICIOUS)])
    pipeline.queue.publish("t2", [QueueRecord(None, MALICIOUS)])
    pipeline.queue.publish("t3", [QueueRecord(None, MALICIOUS)])
    pipeline.run_once()
    got = sorted((r.tenant_id, r.level, r.suppression_window_s) for c in sink.calls for r in c)
    assert got == [("t2", "critical", 60.0), ("t3", "high", None)]


def test_envelope_details_match_rules(db_engine: Engine, registry: RuleRegistry) -> None:
    envelope = {
        "event_id": "2b0c5a4e-7f53-4c16-9a39-0a8f5f8f1e11",
        "timestamp": "2026-11-21T08:00:00Z",
        "source": {"service": "edr"},
        "event_type": "threat_detected",
        "severity": "high",
        "details": orjson.loads(MALICIOUS),
        "metadata": {"correlation_id": "c-1"},
    }
    sink = RecordingSink()
    pipeline = _pipeline(db_engine, registry, sink)
    pipeline.queue.publish("t1", [QueueRecord(envelope["event_id"], orjson.dumps(envelope))])
    pipeline.run_once()
    [[record]] = sink.calls
    assert record.rule_id == ENCODED_PS_RULE
    assert record.correlation_id == "c-1"
    assert record.event_fields["source.service"] == "edr"
    with session_factory(db_engine)() as s:
        assert s.execute(select(func.count()).select_from(Detection)).scalar_one() == 1
