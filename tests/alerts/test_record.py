"""record_detections: new alerts, folding inside the suppression window, idempotency, outbox."""

from __future__ import annotations

from datetime import timedelta

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vigil.alerts.models import Alert, AlertDetection
from vigil.alerts.service import Outcome
from vigil.bus.models import OutboxEvent
from vigil.config import Settings
from vigil.obs.metrics import ALERTS_DEDUPLICATED, ALERTS_RAISED, REGISTRY

from .helpers import T0, TENANT, detection, record


def _alerts(session: Session) -> list[Alert]:
    return list(session.scalars(select(Alert).order_by(Alert.created_at, Alert.id)))


def _outbox(session: Session, event_type: str) -> list[dict]:
    rows = session.scalars(
        select(OutboxEvent.body)
        .where(OutboxEvent.event_type == event_type)
        .order_by(OutboxEvent.seq)
    ).all()
    return [orjson.loads(b) for b in rows]


def test_a_detection_becomes_an_alert(db: Session) -> None:
    det = detection(level="critical", event_ids=["e1", "e2"])
    [out] = record(db, [det])
    assert out.outcome is Outcome.CREATED
    [alert] = _alerts(db)
    assert alert.id == out.alert_id
    assert alert.tenant_id == TENANT
    assert alert.severity == "critical" and alert.severity_rank == 4
    assert alert.status == "new"
    assert alert.count == 1
    assert alert.entity == "host=WS01 user=alice"
    assert alert.entity_fields == {"host": "WS01", "user": "alice"}
    assert alert.tags == ["attack.execution", "attack.t1059.001"]
    assert alert.first_seen == T0 and alert.last_seen == T0
    assert alert.context["CommandLine"] == "powershell -enc AAA"
    [link] = db.scalars(select(AlertDetection)).all()
    assert link.detection_id == det.detection_id and link.event_ids == ["e1", "e2"]
    [event] = _outbox(db, "threat_detected")
    assert event["severity"] == "critical"
    assert event["source"]["service"] == "vigil"
    assert event["metadata"]["tenant_id"] == TENANT
    assert event["metadata"]["correlation_id"] == alert.id
    details = event["details"]
    assert details["alert_id"] == alert.id
    assert details["rule_id"] == "rule-1" and details["rule_title"] == "Suspicious thing"
    assert details["entity"] == "host=WS01 user=alice"
    assert details["tags"] == ["attack.execution", "attack.t1059.001"]
    assert details["count"] == 1
    assert details["first_seen"] == T0.isoformat()


def test_same_fingerprint_inside_window_folds(db: Session) -> None:
    first = record(db, [detection(at=T0)])[0]
    second = record(db, [detection(host="ws01", at=T0 + timedelta(minutes=50))])[0]
    third = record(db, [detection(at=T0 - timedelta(minutes=5))])[0]
    assert second.outcome is Outcome.DEDUPLICATED and third.outcome is Outcome.DEDUPLICATED
    assert first.alert_id == second.alert_id == third.alert_id
    [alert] = _alerts(db)
    db.refresh(alert)
    assert alert.count == 3
    assert alert.first_seen == T0 - timedelta(minutes=5)
    assert alert.last_seen == T0 + timedelta(minutes=50)
    assert alert.entity == "host=WS01 user=alice"  # the first spelling stays
    assert len(_outbox(db, "threat_detected")) == 1


def test_outside_window_or_other_entity_or_rule_raises_a_new_alert(db: Session) -> None:
    base = record(db, [detection(at=T0)])[0]
    later = record(db, [detection(at=T0 + timedelta(minutes=61))], now=T0 + timedelta(hours=2))[0]
    other_host = record(db, [detection(host="WS02", at=T0)])[0]
    other_rule = record(db, [detection(rule_id="rule-2", at=T0)])[0]
    other_tenant = record(db, [detection(tenant="tenant-b", at=T0)])[0]
    outcomes = [later, other_host, other_rule, other_tenant]
    assert all(o.outcome is Outcome.CREATED for o in outcomes)
    assert len({base.alert_id, *(o.alert_id for o in outcomes)}) == 5


def test_per_rule_window_and_setting(db: Session, tmp_path) -> None:
    record(db, [detection(at=T0)])
    short = record(db, [detection(at=T0 + timedelta(minutes=10), window_s=300)])[0]
    assert short.outcome is Outcome.CREATED
    settings = Settings(home=tmp_path, alerts={"suppression_window_s": 7200})
    long = record(
        db,
        [detection(rule_id="r9", at=T0), detection(rule_id="r9", at=T0 + timedelta(minutes=100))],
        now=T0 + timedelta(hours=3),
        settings=settings,
    )
    assert [o.outcome for o in long] == [Outcome.CREATED, Outcome.DEDUPLICATED]


def test_folds_count_when_a_later_detection_of_the_batch_opens_a_new_alert(db: Session) -> None:
    [first] = record(db, [detection()])
    later = [detection(at=T0 + timedelta(minutes=1)), detection(at=T0 + timedelta(hours=3))]
    out = record(db, later)
    assert [o.outcome for o in out] == [Outcome.DEDUPLICATED, Outcome.CREATED]
    counts = {a.id: a.count for a in _alerts(db)}
    assert counts == {first.alert_id: 2, out[1].alert_id: 1}


def test_closed_alerts_do_not_absorb(db: Session) -> None:
    first = record(db, [detection(at=T0)])[0]
    alert = db.get(Alert, first.alert_id)
    assert alert is not None
    alert.status = "resolved"
    db.commit()
    again = record(db, [detection(at=T0 + timedelta(minutes=1))])[0]
    assert again.outcome is Outcome.CREATED and again.alert_id != first.alert_id


def test_recording_twice_changes_nothing(db: Session) -> None:
    dets = [detection(detection_id="d-1"), detection(detection_id="d-2", host="WS02")]
    first = record(db, dets)
    again = record(db, dets)
    assert [o.outcome for o in again] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert [o.alert_id for o in again] == [o.alert_id for o in first]
    assert db.scalar(select(func.count()).select_from(Alert)) == 2
    assert db.scalar(select(func.sum(Alert.count))) == 2
    assert db.scalar(select(func.count()).select_from(AlertDetection)) == 2
    assert len(_outbox(db, "threat_detected")) == 2


def test_duplicates_inside_one_batch(db: Session) -> None:
    det = detection(detection_id="same")
    out = record(db, [det, det, detection(detection_id="other")])
    assert [o.outcome for o in out] == [Outcome.CREATED, Outcome.DUPLICATE, Outcome.DEDUPLICATED]
    [alert] = _alerts(db)
    assert alert.count == 2


def test_same_detection_id_in_two_tenants_is_two_detections(db: Session) -> None:
    out = record(
        db,
        [detection(detection_id="x"), detection(detection_id="x", tenant="tenant-b")],
    )
    assert [o.outcome for o in out] == [Outcome.CREATED, Outcome.CREATED]


def test_batch_folds_into_a_new_alert_and_counts_in_event(db: Session) -> None:
    out = record(db, [detection(at=T0 + timedelta(seconds=i)) for i in range(5)])
    assert [o.outcome for o in out] == [Outcome.CREATED] + [Outcome.DEDUPLICATED] * 4
    [event] = _outbox(db, "threat_detected")
    assert event["details"]["count"] == 5
    assert event["details"]["last_seen"] == (T0 + timedelta(seconds=4)).isoformat()


def test_correlation_detection_uses_group_by_fields(db: Session) -> None:
    det = detection(
        kind="correlation",
        group={"TargetUserName": "bob", "IpAddress": "10.0.0.5"},
        correlation_id="corr-1",
    )
    [out] = record(db, [det])
    alert = db.get(Alert, out.alert_id)
    assert alert is not None
    assert alert.entity == "IpAddress=10.0.0.5 TargetUserName=bob"
    assert alert.correlation_id == "corr-1"
    [event] = _outbox(db, "threat_detected")
    assert event["metadata"]["correlation_id"] == "corr-1"


def test_future_event_time_is_taken_as_now(db: Session) -> None:
    now = T0 + timedelta(minutes=1)
    [out] = record(db, [detection(at=T0 + timedelta(days=30))], now=now)
    alert = db.get(Alert, out.alert_id)
    assert alert is not None and alert.last_seen == now


def test_metrics_count_after_commit_only(db: Session) -> None:
    def value(name: str, labels: dict[str, str] | None = None) -> float:
        return REGISTRY.get_sample_value(name, labels or {}) or 0.0

    raised = value("vigil_alerts_raised_total", {"severity": "medium"})
    folded = value("vigil_alerts_deduplicated_total")
    from vigil.alerts.service import record_detections

    record_detections(db, detections=[detection(level="medium")], now=T0)
    db.rollback()
    assert value("vigil_alerts_raised_total", {"severity": "medium"}) == raised
    record(db, [detection(level="medium"), detection(level="medium")], now=T0)
    assert value("vigil_alerts_raised_total", {"severity": "medium"}) == raised + 1
    assert value("vigil_alerts_deduplicated_total") == folded + 1
    assert ALERTS_RAISED is not None and ALERTS_DEDUPLICATED is not None
