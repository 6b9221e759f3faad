"""Working an incident by hand: open, change, comment, add and remove alerts.

Every change writes timeline entries, an audit ledger entry (``incident.create``,
``incident.status``, ``incident.assign``, ``incident.update``, ``incident.comment``,
``incident.alerts_add``, ``incident.alerts_remove``) and, except comments, an ``incident_opened``
or ``incident_updated`` outbox event, all in the caller's transaction. The lifecycle is in
:mod:`vigil.incidents.states`, the SLA rules in :mod:`vigil.incidents.sla`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from vigil.alerts.aftercommit import after_commit
from vigil.alerts.events import AlertSummary
from vigil.alerts.models import Alert
from vigil.bus.outbox import emit
from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.events.envelope import Severity
from vigil.incidents import events
from vigil.incidents.config import SlaSettings
from vigil.incidents.grouping import (
    attach_alerts,
    draft_incident,
    entity_key,
    opened_item,
    set_severity,
    severity_item,
)
from vigil.incidents.models import Incident, IncidentAlert, IncidentTimelineEntry
from vigil.incidents.schemas import IncidentCreate, IncidentUpdate
from vigil.incidents.sla import flag_breaches
from vigil.incidents.states import IncidentStatus, check_transition
from vigil.incidents.timeline import SUMMARY_MAX, TimelineItem, TimelineKind, record
from vigil.ledger.service import append
from vigil.obs.logging import REQUEST_ID
from vigil.obs.metrics import INCIDENTS_OPENED

_BY_RANK = {s.rank: s for s in Severity}
#: Fields of IncidentUpdate that are plain text/list edits (one "updated" timeline entry).
_EDITABLE = ("title", "description", "root_cause", "lessons_learned", "follow_ups")


@dataclass
class _Change:
    incident: Incident
    actor: str
    now: datetime
    items: list[TimelineItem] = field(default_factory=list)
    change: dict[str, Any] = field(default_factory=dict)

    def note(self, kind: TimelineKind, summary: str, data: dict[str, Any]) -> None:
        self.items.append(
            TimelineItem(
                incident_id=self.incident.id,
                tenant_id=self.incident.tenant_id,
                kind=kind,
                actor=self.actor,
                summary=summary,
                at=self.now,
                data=data,
            )
        )

    def audit(self, session: Session, action: str, change: Any) -> None:
        append(
            session,
            tenant=self.incident.tenant_id,
            actor=self.actor,
            action=action,
            target=f"incident:{self.incident.id}",
            request_id=REQUEST_ID.get(),
            change=change,
            time=self.now,
        )


def get_incident(session: Session, *, incident_id: str, for_update: bool = False) -> Incident:
    """The incident, or :class:`NotFoundError` (also for another tenant's incident)."""
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    incident = session.scalars(stmt).one_or_none()
    if incident is None:
        raise NotFoundError(f"incident {incident_id} not found")
    return incident


def _load_alerts(
    session: Session, alert_ids: Sequence[str], *, field_name: str
) -> list[AlertSummary]:
    rows = {a.id: a for a in session.scalars(select(Alert).where(Alert.id.in_(alert_ids)))}
    missing = [i for i in alert_ids if i not in rows]
    if missing:
        raise InvalidInputError(f"no such alerts: {', '.join(missing[:20])}", field=field_name)
    return [AlertSummary.from_row(rows[i]) for i in alert_ids]


def _take_free(
    session: Session,
    alerts: list[AlertSummary],
    *,
    into: str | None,
    move: bool,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> list[AlertSummary]:
    """The alerts not yet in ``into``; with ``move``, detach those in other incidents first,
    otherwise refuse them (409)."""
    ids = [a.id for a in alerts]
    links: dict[str, str] = {
        alert_id: incident_id
        for alert_id, incident_id in session.execute(
            select(IncidentAlert.alert_id, IncidentAlert.incident_id).where(
                IncidentAlert.alert_id.in_(ids)
            )
        ).all()
    }
    elsewhere: dict[str, list[str]] = {}
    for alert_id, incident_id in links.items():
        if incident_id != into:
            elsewhere.setdefault(incident_id, []).append(alert_id)
    if elsewhere and not move:
        taken = ", ".join(f"{a} (in {i})" for i, alerts_ in elsewhere.items() for a in alerts_)
        raise ConflictError(f"alerts already belong to an incident: {taken}; pass move=true")
    for incident_id, alert_ids in elsewhere.items():
        _detach(
            session,
            get_incident(session, incident_id=incident_id, for_update=True),
            alert_ids,
            actor=actor,
            now=now,
            sla=sla,
            reason=f"moved to incident {into}" if into else "moved to a new incident",
        )
    return [a for a in alerts if into is None or links.get(a.id) != into]


def _detach(
    session: Session,
    incident: Incident,
    alert_ids: Sequence[str],
    *,
    actor: str,
    now: datetime,
    sla: SlaSettings,
    reason: str | None = None,
) -> None:
    change = _Change(incident, actor, now)
    session.execute(
        delete(IncidentAlert).where(
            IncidentAlert.incident_id == incident.id, IncidentAlert.alert_id.in_(alert_ids)
        )
    )
    incident.alert_count = max(0, incident.alert_count - len(alert_ids))
    incident.updated_at = now
    for alert_id in alert_ids:
        summary = f"alert removed: {alert_id}" + (f" ({reason})" if reason else "")
        change.note(TimelineKind.ALERT_REMOVED, summary, {"alert_id": alert_id})
    top = session.scalar(
        select(func.max(Alert.severity_rank))
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident.id)
    )
    if top is not None and top != incident.severity_rank:
        change.items.append(severity_item(incident, _BY_RANK[top], actor=actor, now=now))
        set_severity(incident, _BY_RANK[top], sla)
    record(session, change.items)
    change.audit(session, "incident.alerts_remove", {"alert_ids": list(alert_ids)})
    emit(
        session,
        tenant_id=incident.tenant_id,
        event=events.incident_updated(
            incident, actor=actor, change={"alerts_removed": list(alert_ids)}
        ),
    )


def create_incident(
    session: Session,
    *,
    tenant_id: str,
    data: IncidentCreate,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> Incident:
    alerts = _load_alerts(session, data.alert_ids, field_name="body.alert_ids")
    if alerts and data.severity is not None:
        raise InvalidInputError(
            "with alert_ids the severity is the most severe alert's; leave severity out",
            field="body.severity",
        )
    if not alerts and data.severity is None:
        raise InvalidInputError(
            "an incident without alerts needs a severity", field="body.severity"
        )
    alerts = _take_free(session, alerts, into=None, move=data.move, actor=actor, now=now, sla=sla)
    lead = max(alerts, key=lambda a: a.severity.rank) if alerts else None
    draft = draft_incident(
        tenant_id=tenant_id,
        title=data.title,
        description=data.description,
        owner=data.owner,
        severity=lead.severity if lead else data.severity or Severity.MEDIUM,
        entity=lead.entity if lead else "",
        entity_key=entity_key(lead) if lead else None,
        correlation_id=lead.correlation_id if lead else None,
        actor=actor,
        now=now,
        last_alert_at=max((a.last_seen for a in alerts), default=now),
        sla=sla,
    )
    incident = Incident(**draft.row())
    session.add(incident)
    session.flush()
    items = [opened_item(incident, actor=actor)]
    items += attach_alerts(session, incident, alerts, actor=actor, now=now, sla=sla)
    record(session, items)
    alert_ids = [a.id for a in alerts]
    _Change(incident, actor, now).audit(
        session, "incident.create", {"title": data.title, "alert_ids": alert_ids}
    )
    emit(
        session,
        tenant_id=tenant_id,
        event=events.incident_opened(incident, alert_ids=alert_ids, actor=actor),
    )
    severity = incident.severity
    after_commit(session, lambda: INCIDENTS_OPENED.labels(severity).inc())
    return incident


def add_alerts(
    session: Session,
    *,
    incident_id: str,
    alert_ids: Sequence[str],
    move: bool,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> Incident:
    incident = get_incident(session, incident_id=incident_id, for_update=True)
    if incident.status == IncidentStatus.CLOSED:
        raise ConflictError(f"incident {incident_id} is closed")
    alerts = _load_alerts(session, alert_ids, field_name="body.alert_ids")
    alerts = _take_free(session, alerts, into=incident.id, move=move, actor=actor, now=now, sla=sla)
    if not alerts:
        return incident
    record(session, attach_alerts(session, incident, alerts, actor=actor, now=now, sla=sla))
    added = [a.id for a in alerts]
    _Change(incident, actor, now).audit(session, "incident.alerts_add", {"alert_ids": added})
    emit(
        session,
        tenant_id=incident.tenant_id,
        event=events.incident_updated(incident, actor=actor, change={"alerts_added": added}),
    )
    return incident


def remove_alert(
    session: Session,
    *,
    incident_id: str,
    alert_id: str,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> Incident:
    incident = get_incident(session, incident_id=incident_id, for_update=True)
    linked = session.scalar(
        select(IncidentAlert.id).where(
            IncidentAlert.incident_id == incident.id, IncidentAlert.alert_id == alert_id
        )
    )
    if linked is None:
        raise NotFoundError(f"alert {alert_id} is not in incident {incident_id}")
    _detach(session, incident, [alert_id], actor=actor, now=now, sla=sla)
    return incident


def _apply_status(change: _Change, target: IncidentStatus, note: str | None) -> None:
    incident, now = change.incident, change.now
    current = IncidentStatus(incident.status)
    if not check_transition(current, target):
        return
    incident.status = target.value
    if current is IncidentStatus.OPEN and incident.acknowledged_at is None:
        incident.acknowledged_at = now
    if target is IncidentStatus.RESOLVED:
        incident.resolved_at = now
    elif target is IncidentStatus.CLOSED:
        incident.closed_at = now
    elif current is IncidentStatus.RESOLVED:
        incident.resolved_at = None  # reopened: the resolve clock runs again
    change.change["status"] = {"from": current.value, "to": target.value}
    change.note(
        TimelineKind.STATUS,
        f"status {current.value} → {target.value}" + (f": {note}" if note else ""),
        {"from": current.value, "to": target.value, "note": note},
    )


def update_incident(
    session: Session,
    *,
    incident_id: str,
    data: IncidentUpdate,
    actor: str,
    now: datetime,
) -> Incident:
    """Apply the fields set in ``data`` (status, owner, text fields); 409 on a forbidden
    transition, before anything changes."""
    incident = get_incident(session, incident_id=incident_id, for_update=True)
    given = data.model_fields_set
    change = _Change(incident, actor, now)
    if data.status is not None:
        _apply_status(change, data.status, data.note)
    if "owner" in given and data.owner != incident.owner:
        change.change["owner"] = {"from": incident.owner, "to": data.owner}
        change.note(
            TimelineKind.OWNER,
            f"owner {incident.owner or '-'} → {data.owner or '-'}",
            change.change["owner"],
        )
        incident.owner = data.owner
    edited: dict[str, Any] = {}
    for name in _EDITABLE:
        if name not in given:
            continue
        value = getattr(data, name)
        if name == "follow_ups":
            value = [f.model_dump(mode="json") for f in value or []]
        elif name == "title" and value is None:
            raise InvalidInputError("the title cannot be empty", field="body.title")
        if value != getattr(incident, name):
            edited[name] = value
            setattr(incident, name, value)
    if edited:
        change.change["fields"] = sorted(edited)
        change.note(TimelineKind.UPDATED, f"updated {', '.join(sorted(edited))}", edited)
    if not change.change:
        if data.note:
            add_comment(session, incident_id=incident.id, actor=actor, body=data.note, now=now)
        return incident
    incident.updated_at = now
    session.flush()
    record(session, change.items)
    if "status" in change.change:
        change.audit(session, "incident.status", {**change.change["status"], "note": data.note})
        flag_breaches(session, incident, now=now)
    if "owner" in change.change:
        change.audit(session, "incident.assign", change.change["owner"])
    if edited:
        change.audit(session, "incident.update", edited)
    emit(
        session,
        tenant_id=incident.tenant_id,
        event=events.incident_updated(incident, actor=actor, change=change.change),
    )
    return incident


def add_comment(
    session: Session, *, incident_id: str, actor: str, body: str, now: datetime
) -> IncidentTimelineEntry:
    incident = get_incident(session, incident_id=incident_id)
    entry = IncidentTimelineEntry(
        tenant_id=incident.tenant_id,
        incident_id=incident.id,
        at=now,
        kind=TimelineKind.COMMENT.value,
        actor=actor,
        summary=body[:SUMMARY_MAX],
        data={"body": body},
    )
    session.add(entry)
    session.flush()
    _Change(incident, actor, now).audit(session, "incident.comment", {"body": body})
    return entry
