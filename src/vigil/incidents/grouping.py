"""Alerts into incidents: automatic grouping, and attaching alerts to an incident.

Policy (automatic, for every *new* alert, in the transaction that raised it):

1. **Correlation id.** If the alert carries a correlation id and an active incident (open,
   acknowledged, investigating or contained) of its tenant has the same correlation id and saw an
   alert within the grouping window (default 24 h), the alert joins it.
2. **Entity.** Otherwise, if an active incident of the tenant has the same *entity key* and saw an
   alert within the window, the alert joins it. The entity key is the host when the alert names
   one (``host:<name>``; for correlation alerts a group-by field named like a host field counts),
   else the user (``user:<name>``), else the alert's other entity fields, else the rule
   (``rule:<id>``: alerts of one rule with no entity at all group together). Names compare
   case-insensitively.
3. **Open.** Otherwise, when the alert's severity is at least ``open_min_severity`` (default
   medium), it opens a new incident with that entity key and correlation id.
4. Else it stays a lone alert (an analyst can still add it to an incident by hand).

"Saw an alert" uses alert times (``last_seen``: event time), so replaying old logs groups them
as they happened. When a folded detection moves an alert's ``last_seen``, the incident it belongs
to moves its ``last_alert_at`` too, so a long-running attack keeps its incident.

An incident's severity is its most severe alert's; SLA due times follow (see :mod:`.sla`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, select, union_all, update
from sqlalchemy.orm import Session

from vigil.alerts.aftercommit import after_commit
from vigil.alerts.entity import HOST_FIELDS, USER_FIELDS
from vigil.alerts.events import AlertSummary
from vigil.alerts.models import TITLE_MAX
from vigil.alerts.types import UtcDateTime, insert_rows, lock_keys, table_of
from vigil.bus.outbox import emit_many
from vigil.events.envelope import SecurityEvent, Severity
from vigil.incidents import events
from vigil.incidents.config import IncidentsSettings, SlaSettings
from vigil.incidents.models import KEY_MAX, Incident, IncidentAlert, IncidentDraft, IncidentLike
from vigil.incidents.sla import SYSTEM_ACTOR, due_times, retarget
from vigil.incidents.states import ACTIVE_STATUSES, IncidentStatus
from vigil.incidents.timeline import TimelineItem, TimelineKind, record
from vigil.ledger.schemas import AuditEntryCreate
from vigil.ledger.service import append_many
from vigil.obs.logging import REQUEST_ID
from vigil.obs.metrics import INCIDENTS_OPENED

_HOSTS = frozenset(HOST_FIELDS)
_USERS = frozenset(USER_FIELDS)


def entity_key(alert: AlertSummary) -> str:
    """The key automatic grouping matches on (see the module docstring)."""
    fields = alert.entity_fields
    for name in ("host", *HOST_FIELDS):
        if name in fields:
            return f"host:{fields[name].lower()}"[:KEY_MAX]
    for name in ("user", *USER_FIELDS):
        if name in fields:
            return f"user:{fields[name].lower()}"[:KEY_MAX]
    if fields:
        return f"entity:{alert.entity.lower()}"[:KEY_MAX]
    return f"rule:{alert.rule_id}"[:KEY_MAX]


@dataclass(slots=True)
class _Touched:
    incident: IncidentDraft
    opened: bool = False
    added: list[str] = field(default_factory=list)


def draft_incident(
    *,
    tenant_id: str,
    title: str,
    severity: Severity,
    entity: str,
    entity_key: str | None,
    correlation_id: str | None,
    actor: str,
    now: datetime,
    last_alert_at: datetime,
    sla: SlaSettings,
    description: str | None = None,
    owner: str | None = None,
) -> IncidentDraft:
    """A new incident's row, outside the ORM (``Incident(**draft.row())`` makes it a mapped
    row)."""
    ack_due, resolve_due = due_times(now, severity, sla)
    return IncidentDraft(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        title=title[:TITLE_MAX],
        description=description,
        severity=severity.value,
        severity_rank=severity.rank,
        status=IncidentStatus.OPEN.value,
        owner=owner,
        entity=entity,
        entity_key=entity_key,
        correlation_id=correlation_id,
        alert_count=0,
        opened_by=actor,
        opened_at=now,
        updated_at=now,
        last_alert_at=last_alert_at,
        acknowledged_at=None,
        resolved_at=None,
        closed_at=None,
        ack_due_at=ack_due,
        resolve_due_at=resolve_due,
        ack_breached=False,
        resolve_breached=False,
        root_cause=None,
        lessons_learned=None,
        follow_ups=[],
    )


def opened_item(incident: IncidentLike, *, actor: str) -> TimelineItem:
    return TimelineItem(
        incident_id=incident.id,
        tenant_id=incident.tenant_id,
        kind=TimelineKind.OPENED,
        actor=actor,
        summary=f"incident opened ({incident.severity})",
        at=incident.opened_at,
        data={"severity": incident.severity, "entity": incident.entity},
    )


def link_alerts(
    incident: IncidentLike,
    alerts: Sequence[AlertSummary],
    *,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> tuple[list[dict[str, Any]], list[TimelineItem]]:
    """Count ``alerts`` into ``incident`` (its counters, last alert time, severity and SLA) and
    return the link rows and timeline items to write; touches no database."""
    if not alerts:
        return [], []
    links = [
        {
            "tenant_id": incident.tenant_id,
            "incident_id": incident.id,
            "alert_id": a.id,
            "added_at": now,
            "added_by": actor,
        }
        for a in alerts
    ]
    items = [
        TimelineItem(
            incident_id=incident.id,
            tenant_id=incident.tenant_id,
            kind=TimelineKind.ALERT_ADDED,
            actor=actor,
            summary=f"alert added: {a.title}" + (f" ({a.entity})" if a.entity else ""),
            at=now,
            data={"alert_id": a.id, "severity": a.severity.value, "rule_id": a.rule_id},
        )
        for a in alerts
    ]
    incident.alert_count += len(alerts)
    incident.last_alert_at = max(incident.last_alert_at, *(a.last_seen for a in alerts))
    incident.updated_at = now
    top = max((a.severity for a in alerts), key=lambda s: s.rank)
    if top.rank > incident.severity_rank:
        items.append(severity_item(incident, top, actor=actor, now=now))
        set_severity(incident, top, sla)
    return links, items


def attach_alerts(
    session: Session,
    incident: Incident,
    alerts: Sequence[AlertSummary],
    *,
    actor: str,
    now: datetime,
    sla: SlaSettings,
) -> list[TimelineItem]:
    """Link ``alerts`` (which belong to no incident) to ``incident``, a row of the session;
    returns the timeline items to record."""
    links, items = link_alerts(incident, alerts, actor=actor, now=now, sla=sla)
    insert_rows(session, IncidentAlert, links)
    return items


def set_severity(incident: IncidentLike, severity: Severity, sla: SlaSettings) -> None:
    incident.severity = severity.value
    incident.severity_rank = severity.rank
    retarget(incident, sla)


def severity_item(
    incident: IncidentLike, severity: Severity, *, actor: str, now: datetime
) -> TimelineItem:
    return TimelineItem(
        incident_id=incident.id,
        tenant_id=incident.tenant_id,
        kind=TimelineKind.SEVERITY,
        actor=actor,
        summary=f"severity {incident.severity} → {severity.value}",
        at=now,
        data={"from": incident.severity, "to": severity.value},
    )


def _candidates(
    session: Session, alerts: Sequence[AlertSummary], *, earliest: datetime
) -> list[IncidentDraft]:
    """The active incidents the batch's alerts could join, as plain rows: one statement, no
    mapped objects (their changes go back in one bulk update, :func:`_update_existing`)."""
    tenants = sorted({a.tenant_id for a in alerts})
    keys = sorted({entity_key(a) for a in alerts})
    correlations = sorted({a.correlation_id for a in alerts if a.correlation_id})
    table = table_of(Incident)

    def matching(match: ColumnElement[bool]) -> Select[Any]:
        return select(*(table.c[name] for name in IncidentDraft.__slots__)).where(
            table.c.tenant_id.in_(tenants),
            table.c.status.in_([s.value for s in ACTIVE_STATUSES]),
            table.c.last_alert_at >= earliest,
            match,
        )

    by_key = matching(table.c.entity_key.in_(keys))
    # A UNION ALL (duplicates dropped here: PostgreSQL cannot compare the JSON column), not an
    # OR of both lists: with the OR, SQLite walked every incident of the tenant (the opened_at
    # index) instead of the entity key and correlation id indexes.
    query = (
        union_all(by_key, matching(table.c.correlation_id.in_(correlations)))
        if correlations
        else by_key
    )
    rows = {row[0]: row for row in session.execute(query)}
    return [IncidentDraft(*row) for row in rows.values()]


def _update_existing(session: Session, joined: Sequence[_Touched]) -> None:
    """Write what new alerts changed in incidents that were open before the batch: one
    ``executemany`` (counters are added, so a concurrent hand-made change is not lost)."""
    if not joined:
        return
    table = table_of(Incident)
    stamp = UtcDateTime()
    b_last = bindparam("b_last", type_=stamp)
    session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            alert_count=table.c.alert_count + bindparam("b_added"),
            # Folded detections of another batch may have moved it further meanwhile.
            last_alert_at=case(
                (table.c.last_alert_at < b_last, b_last), else_=table.c.last_alert_at
            ),
            updated_at=bindparam("b_updated", type_=stamp),
            severity=bindparam("b_severity"),
            severity_rank=bindparam("b_rank"),
            ack_due_at=bindparam("b_ack_due", type_=stamp),
            resolve_due_at=bindparam("b_resolve_due", type_=stamp),
        ),
        [
            {
                "b_id": t.incident.id,
                "b_added": len(t.added),
                "b_last": t.incident.last_alert_at,
                "b_updated": t.incident.updated_at,
                "b_severity": t.incident.severity,
                "b_rank": t.incident.severity_rank,
                "b_ack_due": t.incident.ack_due_at,
                "b_resolve_due": t.incident.resolve_due_at,
            }
            for t in joined
        ],
    )
    # A caller's session may hold some of these incidents already: let it reload them.
    for t in joined:
        held = session.identity_map.get(session.identity_key(Incident, t.incident.id))
        if held is not None:
            session.expire(held)


def _touch_incidents(session: Session, touched: Mapping[str, datetime]) -> None:
    """Folded detections moved these alerts' ``last_seen``: move their incidents along."""
    ids = sorted(touched)
    latest: dict[str, datetime] = {}
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        rows = session.execute(
            select(IncidentAlert.incident_id, IncidentAlert.alert_id).where(
                IncidentAlert.alert_id.in_(part)
            )
        ).all()
        for incident_id, alert_id in rows:
            seen = touched[alert_id]
            if incident_id not in latest or seen > latest[incident_id]:
                latest[incident_id] = seen
    if not latest:
        return
    for incident in session.scalars(
        select(Incident).where(
            Incident.id.in_(sorted(latest)),
            Incident.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
    ):
        if latest[incident.id] > incident.last_alert_at:
            incident.last_alert_at = latest[incident.id]


def group_alerts(
    session: Session,
    *,
    new: Sequence[AlertSummary],
    touched: Mapping[str, datetime],
    now: datetime,
    settings: IncidentsSettings,
) -> list[IncidentDraft]:
    """Apply the grouping policy to the alerts a batch raised; returns the incidents opened
    (written, but not rows of the session: load them to change them)."""
    if touched:
        _touch_incidents(session, touched)
    if not new:
        return []
    window = timedelta(seconds=settings.grouping_window_s)
    earliest = min(a.last_seen for a in new) - window
    by_correlation: dict[tuple[str, str], IncidentDraft] = {}
    by_key: dict[tuple[str, str], IncidentDraft] = {}

    def remember(incident: IncidentDraft) -> None:
        for index, value in (
            (by_correlation, incident.correlation_id),
            (by_key, incident.entity_key),
        ):
            if value is None:
                continue
            key = (incident.tenant_id, value)
            known = index.get(key)
            if known is None or incident.last_alert_at >= known.last_alert_at:
                index[key] = incident

    lock_keys(
        session,
        "incident",
        {f"{a.tenant_id}\x1f{entity_key(a)}" for a in new}
        | {f"{a.tenant_id}\x1fcorrelation\x1f{a.correlation_id}" for a in new if a.correlation_id},
    )
    for candidate in _candidates(session, new, earliest=earliest):
        remember(candidate)

    touched_incidents: dict[str, _Touched] = {}
    pending: dict[str, list[AlertSummary]] = {}
    threshold = settings.open_min_severity.rank
    for alert in sorted(new, key=lambda a: a.last_seen):
        key = entity_key(alert)
        incident: IncidentDraft | None = None
        if alert.correlation_id:
            incident = by_correlation.get((alert.tenant_id, alert.correlation_id))
        if incident is None or incident.last_alert_at < alert.last_seen - window:
            incident = by_key.get((alert.tenant_id, key))
        if incident is not None and incident.last_alert_at < alert.last_seen - window:
            incident = None
        if incident is None:
            if alert.severity.rank < threshold:
                continue
            incident = draft_incident(
                tenant_id=alert.tenant_id,
                title=f"{alert.title} on {alert.entity}" if alert.entity else alert.title,
                severity=alert.severity,
                entity=alert.entity,
                entity_key=key,
                correlation_id=alert.correlation_id,
                actor=SYSTEM_ACTOR,
                now=now,
                last_alert_at=alert.last_seen,
                sla=settings.sla,
            )
            touched_incidents[incident.id] = _Touched(incident, opened=True)
        else:
            incident.last_alert_at = max(incident.last_alert_at, alert.last_seen)
            touched_incidents.setdefault(incident.id, _Touched(incident))
        remember(incident)
        pending.setdefault(incident.id, []).append(alert)
        touched_incidents[incident.id].added.append(alert.id)

    # New incidents were built outside the session: one insert for all of them, one for all
    # alert links and one for the timeline, whatever the number of incidents.
    links: list[dict[str, Any]] = []
    items: list[TimelineItem] = []
    for entry in touched_incidents.values():
        if entry.opened:
            items.append(opened_item(entry.incident, actor=SYSTEM_ACTOR))
        more_links, more_items = link_alerts(
            entry.incident,
            pending[entry.incident.id],
            actor=SYSTEM_ACTOR,
            now=now,
            sla=settings.sla,
        )
        links += more_links
        items += more_items
    opened = [t.incident for t in touched_incidents.values() if t.opened]
    insert_rows(session, Incident, [i.row() for i in opened])
    _update_existing(session, [t for t in touched_incidents.values() if not t.opened])
    insert_rows(session, IncidentAlert, links)
    record(session, items)
    _announce(session, list(touched_incidents.values()))
    return opened


def _announce(session: Session, touched: list[_Touched]) -> None:
    """Outbox events, ledger entries (for opened incidents) and metrics of a grouping pass."""
    by_tenant: dict[str, list[SecurityEvent]] = {}
    ledger: list[AuditEntryCreate] = []
    for entry in touched:
        incident = entry.incident
        if entry.opened:
            event = events.incident_opened(incident, alert_ids=entry.added, actor=SYSTEM_ACTOR)
            ledger.append(
                AuditEntryCreate(
                    tenant=incident.tenant_id,
                    actor=SYSTEM_ACTOR,
                    action="incident.open",
                    target=f"incident:{incident.id}",
                    request_id=REQUEST_ID.get(),
                    change={"severity": incident.severity, "alert_ids": entry.added},
                    time=incident.opened_at,
                )
            )
        else:
            event = events.incident_updated(
                incident, actor=SYSTEM_ACTOR, change={"alerts_added": entry.added}
            )
        by_tenant.setdefault(incident.tenant_id, []).append(event)
    for tenant_id, batch in by_tenant.items():
        emit_many(session, tenant_id=tenant_id, events=batch)
    if ledger:
        append_many(session, entries=ledger)
    opened = [t.incident.severity for t in touched if t.opened]

    def count() -> None:
        for severity in opened:
            INCIDENTS_OPENED.labels(severity).inc()

    if opened:
        after_commit(session, count)
