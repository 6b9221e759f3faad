"""Reading incidents: the filtered, sorted, cursor-paged list and one incident in full."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from vigil.alerts.models import Alert
from vigil.alerts.paging import Keyset, page
from vigil.alerts.query import contains, read_alerts
from vigil.incidents.models import Incident, IncidentAlert, IncidentTimelineEntry
from vigil.incidents.schemas import (
    IncidentDetail,
    IncidentQuery,
    IncidentRead,
    IncidentSort,
    TimelineEntryRead,
)
from vigil.incidents.service import get_incident

ALERTS_SHOWN = 500
TIMELINE_SHOWN = 1000

_SORTS: dict[IncidentSort, tuple[InstrumentedAttribute[Any], type]] = {
    IncidentSort.OPENED_AT: (Incident.opened_at, datetime),
    IncidentSort.UPDATED_AT: (Incident.updated_at, datetime),
    IncidentSort.SEVERITY: (Incident.severity_rank, int),
}


def list_incidents(
    session: Session, *, query: IncidentQuery
) -> tuple[Sequence[Incident], str | None]:
    stmt = select(Incident)
    if query.status:
        stmt = stmt.where(Incident.status.in_([s.value for s in query.status]))
    if query.severity:
        stmt = stmt.where(Incident.severity.in_([s.value for s in query.severity]))
    if query.min_severity is not None:
        stmt = stmt.where(Incident.severity_rank >= query.min_severity.rank)
    if query.owner:
        stmt = stmt.where(Incident.owner == query.owner)
    if query.entity:
        stmt = stmt.where(contains(Incident.entity, query.entity))
    if query.q:
        stmt = stmt.where(
            or_(contains(Incident.title, query.q), contains(Incident.entity, query.q))
        )
    if query.since is not None:
        stmt = stmt.where(Incident.opened_at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Incident.opened_at <= query.until)
    if query.breached is not None:
        breached = or_(Incident.ack_breached == true(), Incident.resolve_breached == true())
        stmt = stmt.where(breached if query.breached else ~breached)
    column, value_type = _SORTS[query.sort]
    keyset = Keyset(
        name=query.sort.value,
        column=column,
        id_column=Incident.id,
        order=query.order,
        value_type=value_type,
    )
    return page(session, stmt, keyset=keyset, limit=query.limit, cursor=query.cursor)


def incident_detail(session: Session, *, incident_id: str) -> IncidentDetail:
    incident = get_incident(session, incident_id=incident_id)
    alerts = session.scalars(
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident.id)
        .order_by(Alert.severity_rank.desc(), Alert.last_seen.desc())
        .limit(ALERTS_SHOWN)
    ).all()
    timeline = session.scalars(
        select(IncidentTimelineEntry)
        .where(IncidentTimelineEntry.incident_id == incident.id)
        .order_by(IncidentTimelineEntry.id)
        .limit(TIMELINE_SHOWN)
    ).all()
    return IncidentDetail(
        **IncidentRead.model_validate(incident).model_dump(),
        alerts=read_alerts(session, alerts),
        timeline=[TimelineEntryRead.model_validate(t) for t in timeline],
    )
