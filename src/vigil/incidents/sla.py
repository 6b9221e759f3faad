"""SLA timers of incidents: time to acknowledge and time to resolve, per severity.

Due times are always ``opened_at + target(current severity)``: when a more severe alert joins,
the incident's clock tightens; when one leaves, it relaxes. A breach is flagged once (the flag
never clears, even if the incident is later reopened or its severity drops) by the escalation
worker's tick, or at the moment the incident is acknowledged/resolved late if the worker has not
flagged it yet. Each breach adds an ``sla_breach`` timeline entry, an ``incident_updated`` event
and one ``vigil_sla_breaches_total{kind,severity}``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session

from vigil.alerts.aftercommit import after_commit
from vigil.bus.outbox import emit
from vigil.events.envelope import Severity
from vigil.incidents.config import SlaSettings
from vigil.incidents.events import incident_updated
from vigil.incidents.models import Incident, IncidentLike
from vigil.incidents.states import ACTIVE_STATUSES
from vigil.incidents.timeline import TimelineItem, TimelineKind, record
from vigil.obs.metrics import SLA_BREACHES

SYSTEM_ACTOR = "system:vigil"


class SlaKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


def due_times(
    opened_at: datetime, severity: Severity, sla: SlaSettings
) -> tuple[datetime, datetime]:
    target = sla.for_severity(severity)
    return (
        opened_at + timedelta(seconds=target.acknowledge_s),
        opened_at + timedelta(seconds=target.resolve_s),
    )


def retarget(incident: IncidentLike, sla: SlaSettings) -> None:
    """Recompute the due times after a severity change."""
    incident.ack_due_at, incident.resolve_due_at = due_times(
        incident.opened_at, Severity(incident.severity), sla
    )


def _describe(kind: SlaKind, incident: Incident) -> str:
    due = incident.ack_due_at if kind is SlaKind.ACKNOWLEDGE else incident.resolve_due_at
    late = "acknowledged" if kind is SlaKind.ACKNOWLEDGE else "resolved"
    return f"SLA breached: not {late} by {due.isoformat()} ({incident.severity})"


def breaches_due(incident: Incident, *, now: datetime) -> list[SlaKind]:
    """The breaches of ``incident`` at ``now`` that are not flagged yet."""
    found: list[SlaKind] = []
    if not incident.ack_breached:
        acked = incident.acknowledged_at
        if (acked is None and now > incident.ack_due_at) or (
            acked is not None and acked > incident.ack_due_at
        ):
            found.append(SlaKind.ACKNOWLEDGE)
    if not incident.resolve_breached:
        resolved = incident.resolved_at
        if (resolved is None and now > incident.resolve_due_at) or (
            resolved is not None and resolved > incident.resolve_due_at
        ):
            found.append(SlaKind.RESOLVE)
    return found


def flag_breaches(session: Session, incident: Incident, *, now: datetime) -> list[SlaKind]:
    """Flag what ``incident`` has breached by ``now``: timeline, event, metric (after commit)."""
    kinds = breaches_due(incident, now=now)
    if not kinds:
        return kinds
    items = []
    for kind in kinds:
        if kind is SlaKind.ACKNOWLEDGE:
            incident.ack_breached = True
        else:
            incident.resolve_breached = True
        items.append(
            TimelineItem(
                incident_id=incident.id,
                tenant_id=incident.tenant_id,
                kind=TimelineKind.SLA_BREACH,
                actor=SYSTEM_ACTOR,
                summary=_describe(kind, incident),
                at=now,
                data={"sla": kind.value, "severity": incident.severity},
            )
        )
    session.flush()
    record(session, items)
    emit(
        session,
        tenant_id=incident.tenant_id,
        event=incident_updated(
            incident, actor=SYSTEM_ACTOR, change={"sla_breached": [k.value for k in kinds]}
        ),
    )
    severity = incident.severity

    def count() -> None:
        for kind in kinds:
            SLA_BREACHES.labels(kind.value, severity).inc()

    after_commit(session, count)
    return kinds


def evaluate_breaches(session: Session, *, now: datetime, limit: int) -> int:
    """Flag every active incident whose SLA ran out by ``now`` (at most ``limit``); the count."""
    active = [s.value for s in ACTIVE_STATUSES]
    rows = session.scalars(
        select(Incident)
        .where(
            Incident.status.in_(active),
            or_(
                and_(
                    Incident.ack_breached == false(),
                    Incident.acknowledged_at.is_(None),
                    Incident.ack_due_at < now,
                ),
                and_(
                    Incident.resolve_breached == false(),
                    Incident.resolved_at.is_(None),
                    Incident.resolve_due_at < now,
                ),
            ),
        )
        .order_by(Incident.opened_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)  # decide on the rows as stored now
    ).all()
    for incident in rows:
        flag_breaches(session, incident, now=now)
    return len(rows)
