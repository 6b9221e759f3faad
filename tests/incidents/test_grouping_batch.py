"""Automatic grouping of a whole batch at once: alerts that join an open incident and each other,
a batch spanning two grouping windows, the replay of a batch, and the rows the bulk path writes."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tests.alerts.helpers import T0, detection, record
from tests.incidents.helpers import events, ledger_actions
from vigil.alerts.service import record_detections
from vigil.config import Settings
from vigil.incidents.models import (
    Incident,
    IncidentAlert,
    IncidentDraft,
    IncidentTimelineEntry,
)


def _incidents(db: Session) -> list[Incident]:
    db.expire_all()
    return list(db.scalars(select(Incident).order_by(Incident.opened_at, Incident.entity_key)))


def _members(db: Session, incident: Incident) -> set[str]:
    return set(
        db.scalars(select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident.id))
    )


def _kinds(db: Session, incident: Incident) -> list[str]:
    return list(
        db.scalars(
            select(IncidentTimelineEntry.kind)
            .where(IncidentTimelineEntry.incident_id == incident.id)
            .order_by(IncidentTimelineEntry.id)
        )
    )


def _counts(db: Session) -> tuple[int, int, int, int]:
    def count(model: type) -> int:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)

    return (
        count(Incident),
        count(IncidentAlert),
        count(IncidentTimelineEntry),
        len(events(db, "incident_opened")) + len(events(db, "incident_updated")),
    )


def test_a_batch_joins_an_open_incident_and_opens_another(db: Session) -> None:
    opened_at = T0 + timedelta(minutes=1)
    [first] = record(db, [detection(level="medium", rule_id="r1", host="WS01")], now=opened_at)
    [existing] = _incidents(db)
    later = T0 + timedelta(minutes=20)
    now = later + timedelta(minutes=1)
    batch = [
        # Three new alerts on the host of the open incident (other rules, other users) ...
        detection(level="low", rule_id="r2", host="ws01", user="bob", at=later),
        detection(level="high", rule_id="r3", host="WS01", user="carol", at=later),
        detection(level="medium", rule_id="r4", host="WS01", user=None, at=later),
        # ... and two on a host with no incident: the first opens one, the second joins it.
        detection(level="medium", rule_id="r5", host="WS02", at=later),
        detection(level="critical", rule_id="r6", host="ws02", at=later),
    ]
    out = record(db, batch, now=now)
    joined, fresh = _incidents(db)
    assert joined.id == existing.id
    assert _members(db, joined) == {first.alert_id, *(o.alert_id for o in out[:3])}
    assert joined.alert_count == 4 and joined.severity == "high" and joined.severity_rank == 3
    assert joined.last_alert_at == later and joined.updated_at == now
    # The SLA follows the new severity, measured from when the incident opened.
    assert joined.ack_due_at == opened_at + timedelta(hours=1)
    assert _kinds(db, joined) == ["opened"] + ["alert_added"] * 4 + ["severity"]

    assert fresh.entity_key == "host:ws02" and fresh.opened_at == now
    assert _members(db, fresh) == {o.alert_id for o in out[3:]}
    assert fresh.alert_count == 2 and fresh.severity == "critical"
    assert fresh.ack_due_at == now + timedelta(minutes=15)
    assert _kinds(db, fresh) == ["opened", "alert_added", "alert_added", "severity"]

    [update] = events(db, "incident_updated")
    assert update["details"]["incident_id"] == joined.id
    assert update["details"]["alert_count"] == 4 and update["severity"] == "high"
    assert update["details"]["change"]["alerts_added"] == [o.alert_id for o in out[:3]]
    opened = [e for e in events(db, "incident_opened") if e["details"]["incident_id"] == fresh.id]
    assert [e["details"]["alert_ids"] for e in opened] == [[o.alert_id for o in out[3:]]]
    assert opened[0]["details"]["alert_count"] == 2 and opened[0]["severity"] == "critical"
    assert ledger_actions(db, f"incident:{fresh.id}") == ["incident.open"]
    assert ledger_actions(db, f"incident:{joined.id}") == ["incident.open"]

    # Redelivering the batch changes nothing.
    before = _counts(db)
    again = record(db, batch, now=now + timedelta(minutes=5))
    assert [o.alert_id for o in again] == [o.alert_id for o in out]
    assert _counts(db) == before
    assert [i.alert_count for i in _incidents(db)] == [4, 2]


def test_a_batch_spanning_two_grouping_windows(db: Session, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, incidents={"grouping_window_s": 3600})
    times = [T0, T0 + timedelta(minutes=50), T0 + timedelta(minutes=115), T0 + timedelta(hours=2)]
    # Given out of order: grouping goes by alert time, not by position in the batch.
    order = [2, 0, 3, 1]
    batch = [
        detection(level="high", rule_id=f"r{i}", host="WS07", at=times[i], user=None) for i in order
    ]
    now = T0 + timedelta(hours=3)
    out = record(db, batch, now=now, settings=settings)
    by_time = {times[i]: o.alert_id for i, o in zip(order, out, strict=True)}
    early, late = sorted(_incidents(db), key=lambda i: i.last_alert_at)
    assert _members(db, early) == {by_time[times[0]], by_time[times[1]]}
    assert early.last_alert_at == times[1]
    assert _members(db, late) == {by_time[times[2]], by_time[times[3]]}
    assert late.last_alert_at == times[3]
    assert early.entity_key == late.entity_key == "host:ws07"
    assert len(events(db, "incident_opened")) == 2 and events(db, "incident_updated") == []

    # The next batch joins the later incident only (the earlier one is out of its window).
    at = T0 + timedelta(hours=2, minutes=30)
    [joined] = record(db, [detection(rule_id="r9", host="ws07", at=at, user=None)], now=now)
    early, late = sorted(_incidents(db), key=lambda i: i.last_alert_at)
    assert joined.alert_id in _members(db, late) and late.alert_count == 3
    assert late.last_alert_at == at
    assert early.alert_count == 2 and early.last_alert_at == times[1]


def test_draft_holds_every_incident_column() -> None:
    # A column added to the table but not to the draft would make the bulk insert fail (or,
    # with a default, silently differ from a mapped row): keep them the same.
    columns = {c.key for c in Incident.__table__.columns}
    assert {f.name for f in fields(IncidentDraft)} == columns


def test_an_incident_the_session_holds_is_reloaded(db: Session) -> None:
    # Grouping updates incidents with one bulk statement, around the ORM: an incident the
    # caller's session loaded before must not keep its old counters.
    record(db, [detection(rule_id="r1", host="WS03")], now=T0)
    [held] = _incidents(db)
    assert held.alert_count == 1
    record_detections(
        db, detections=[detection(rule_id="r2", host="WS03")], now=T0 + timedelta(minutes=1)
    )
    [again] = db.scalars(select(Incident)).all()
    assert again is held
    assert held.alert_count == 2 and held.updated_at == T0 + timedelta(minutes=1)
    db.rollback()


def test_an_incident_matched_by_entity_and_correlation_is_one_incident(db: Session) -> None:
    record(db, [detection(rule_id="r1", host="WS05", correlation_id="c-9")], now=T0)
    out = record(
        db,
        [
            detection(rule_id="r2", host="WS05", correlation_id="c-9"),
            detection(rule_id="r3", host="WS05"),
            detection(rule_id="r4", host="WS06", correlation_id="c-9"),
        ],
        now=T0 + timedelta(minutes=1),
    )
    [incident] = _incidents(db)
    assert incident.alert_count == 4
    assert {o.alert_id for o in out} < _members(db, incident)
    [update] = events(db, "incident_updated")
    assert update["details"]["alert_count"] == 4
