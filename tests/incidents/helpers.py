"""Helpers of the incidents tests."""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.bus.models import OutboxEvent
from vigil.incidents.models import IncidentTimelineEntry
from vigil.ledger.models import AuditEntry


def events(db: Session, event_type: str) -> list[dict]:
    rows = db.scalars(
        select(OutboxEvent.body)
        .where(OutboxEvent.event_type == event_type)
        .order_by(OutboxEvent.seq)
    )
    return [orjson.loads(b) for b in rows]


def timeline(db: Session, incident_id: str) -> list[tuple[str, str]]:
    rows = db.execute(
        select(IncidentTimelineEntry.kind, IncidentTimelineEntry.actor)
        .where(IncidentTimelineEntry.incident_id == incident_id)
        .order_by(IncidentTimelineEntry.id)
    ).all()
    return [(kind, actor) for kind, actor in rows]


def ledger_actions(db: Session, target: str) -> list[str]:
    out = []
    for action, raw in db.execute(
        select(AuditEntry.action, AuditEntry.data).order_by(AuditEntry.seq)
    ).all():
        if orjson.loads(raw)["target"] == target:
            out.append(action)
    return out
