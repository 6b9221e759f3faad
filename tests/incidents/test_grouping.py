"""Automatic grouping of new alerts into incidents (policy in vigil.incidents.grouping)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.alerts.helpers import OTHER_TENANT, T0, TENANT, detection, record
from vigil.alerts.events import AlertSummary
from vigil.alerts.models import Alert
from vigil.bus.models import OutboxEvent
from vigil.config import Settings
from vigil.events.envelope import Severity
from vigil.incidents.grouping import entity_key
from vigil.incidents.models import Incident, IncidentAlert, IncidentTimelineEntry
from vigil.ledger.models import AuditEntry
from vigil.obs.metrics import REGISTRY


def _incidents(db: Session) -> list[Incident]:
    db.expire_all()
    return list(db.scalars(select(Incident).order_by(Incident.opened_at, Incident.id)))


def _members(db: Session, incident: Incident) -> set[str]:
    rows = db.scalars(
        select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident.id)
    )
    return set(rows)


def _timeline(db: Session, incident: Incident) -> list[str]:
    rows = db.scalars(
        select(IncidentTimelineEntry.kind)
        .where(IncidentTimelineEntry.incident_id == incident.id)
        .order_by(IncidentTimelineEntry.id)
    )
    return list(rows)


def _events(db: Session, event_type: str) -> list[dict]:
    rows = db.scalars(
        select(OutboxEvent.body)
        .where(OutboxEvent.event_type == event_type)
        .order_by(OutboxEvent.seq)
    )
    return [orjson.loads(b) for b in rows]


def test_high_alert_opens_incident_with_sla(db: Session) -> None:
    before = REGISTRY.get_sample_value("vigil_incidents_opened_total", {"severity": "high"}) or 0
    now = T0 + timedelta(minutes=2)
    [out] = record(db, [detection(level="high")], now=now)
    [incident] = _incidents(db)
    assert incident.tenant_id == TENANT
    assert incident.status == "open" and incident.severity == "high"
    assert incident.title == "Suspicious thing on host=WS01 user=alice"
    assert incident.entity_key == "host:ws01"
    assert incident.alert_count == 1 and _members(db, incident) == {out.alert_id}
    assert incident.opened_at == now
    assert incident.ack_due_at == now + timedelta(hours=1)
    assert incident.resolve_due_at == now + timedelta(hours=24)
    assert not incident.ack_breached and not incident.resolve_breached
    assert _timeline(db, incident) == ["opened", "alert_added"]
    [event] = _events(db, "incident_opened")
    assert event["details"]["incident_id"] == incident.id
    assert event["details"]["alert_ids"] == [out.alert_id]
    assert event["metadata"]["correlation_id"] == incident.id
    [entry] = db.scalars(
        select(AuditEntry).where(AuditEntry.action == "incident.open", AuditEntry.tenant == TENANT)
    ).all()[-1:]
    assert entry.actor == "system:vigil"
    after = REGISTRY.get_sample_value("vigil_incidents_opened_total", {"severity": "high"})
    assert after == before + 1


def test_alerts_on_the_same_host_join_and_raise_severity(db: Session) -> None:
    record(db, [detection(level="medium", rule_id="r1")], now=T0)
    later = T0 + timedelta(minutes=30)
    out = record(
        db,
        [
            detection(level="critical", rule_id="r2", user="bob", at=later),
            detection(level="low", rule_id="r3", host="ws01", user=None, at=later),
        ],
        now=later,
    )
    [incident] = _incidents(db)
    assert incident.alert_count == 3
    assert {o.alert_id for o in out} <= _members(db, incident)
    assert incident.severity == "critical"
    # The SLA clock tightens with the severity, measured from when the incident opened.
    assert incident.ack_due_at == T0 + timedelta(minutes=15)
    assert incident.resolve_due_at == T0 + timedelta(hours=4)
    assert _timeline(db, incident).count("alert_added") == 3
    assert "severity" in _timeline(db, incident)
    [update] = _events(db, "incident_updated")
    assert sorted(update["details"]["change"]["alerts_added"]) == sorted(o.alert_id for o in out)
    assert update["severity"] == "critical"


def test_low_alert_alone_opens_nothing(db: Session) -> None:
    record(db, [detection(level="low"), detection(level="informational", host="X")])
    assert _incidents(db) == []


def test_threshold_and_switch_are_configurable(db: Session, tmp_path: Path) -> None:
    only_critical = Settings(home=tmp_path, incidents={"open_min_severity": "critical"})
    record(db, [detection(level="high")], settings=only_critical)
    assert _incidents(db) == []
    low = Settings(home=tmp_path, incidents={"open_min_severity": "low"})
    record(db, [detection(level="low", host="H2")], settings=low)
    assert len(_incidents(db)) == 1
    off = Settings(home=tmp_path, incidents={"auto_group": False})
    record(db, [detection(level="critical", host="H3")], settings=off)
    assert len(_incidents(db)) == 1


def test_correlation_id_wins_over_entity(db: Session) -> None:
    record(db, [detection(host="A", correlation_id="c-1")], now=T0)
    record(db, [detection(host="B", rule_id="r2", correlation_id="c-1")], now=T0)
    [incident] = _incidents(db)
    assert incident.alert_count == 2 and incident.correlation_id == "c-1"


def test_window_and_status_bound_grouping(db: Session, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, incidents={"grouping_window_s": 3600})
    record(db, [detection(rule_id="r1", at=T0)], now=T0, settings=settings)
    later = T0 + timedelta(hours=2)
    record(db, [detection(rule_id="r2", at=later)], now=later, settings=settings)
    first, second = _incidents(db)
    assert first.alert_count == 1 and second.alert_count == 1
    second.status = "resolved"
    db.commit()
    record(db, [detection(rule_id="r3", at=later)], now=later, settings=settings)
    assert len(_incidents(db)) == 3


def test_folded_detections_keep_the_incident_alive(db: Session, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, incidents={"grouping_window_s": 3600})
    record(db, [detection(rule_id="r1", at=T0)], now=T0, settings=settings)
    for minutes in (50, 100, 150):  # the same alert keeps firing (window 1 h each time)
        at = T0 + timedelta(minutes=minutes)
        record(db, [detection(rule_id="r1", at=at)], now=at, settings=settings)
    at = T0 + timedelta(minutes=170)
    record(db, [detection(rule_id="r2", at=at)], now=at, settings=settings)
    [incident] = _incidents(db)
    assert incident.alert_count == 2
    assert incident.last_alert_at == at


def test_tenants_never_share_incidents(db: Session) -> None:
    record(db, [detection(tenant=TENANT), detection(tenant=OTHER_TENANT)])
    incidents = _incidents(db)
    assert sorted(i.tenant_id for i in incidents) == [TENANT, OTHER_TENANT]
    for incident in incidents:
        [alert_id] = _members(db, incident)
        alert = db.get(Alert, alert_id)
        assert alert is not None and alert.tenant_id == incident.tenant_id


def test_entityless_alerts_group_by_rule(db: Session) -> None:
    record(db, [detection(host=None, user=None), detection(host=None, user=None, rule_id="r2")])
    record(db, [detection(host=None, user=None, fields={"x": 1})])
    incidents = _incidents(db)
    assert sorted(i.entity_key or "" for i in incidents) == ["rule:r2", "rule:rule-1"]


def _summary(**fields: str) -> AlertSummary:
    return AlertSummary(
        id="a",
        tenant_id="t",
        rule_id="r",
        title="t",
        kind="correlation",
        severity=Severity.HIGH,
        status="new",
        entity=" ".join(f"{k}={v}" for k, v in fields.items()),
        entity_fields=dict(fields),
        tags=(),
        correlation_id=None,
        count=1,
        first_seen=T0,
        last_seen=T0,
    )


def test_entity_key_precedence() -> None:
    assert entity_key(_summary(host="WS1", user="bob")) == "host:ws1"
    assert entity_key(_summary(user="Bob")) == "user:bob"
    assert entity_key(_summary(Computer="DC1", IpAddress="1.2.3.4")) == "host:dc1"
    assert entity_key(_summary(SubjectUserName="svc")) == "user:svc"
    assert entity_key(_summary(IpAddress="1.2.3.4")) == "entity:ipaddress=1.2.3.4"
    assert entity_key(_summary()) == "rule:r"
