"""Reading alerts: the filtered, sorted, cursor-paged list and one alert with its history.

Time range: ``since``/``until`` select the alerts whose activity overlaps the range
(``last_seen >= since`` and ``first_seen <= until``), so a long-running alert shows up in every
window it was active in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from vigil.alerts.lifecycle import get_alert
from vigil.alerts.models import Alert, AlertComment, AlertDetection, AlertTransition
from vigil.alerts.paging import Keyset, page
from vigil.alerts.schemas import (
    AlertDetail,
    AlertQuery,
    AlertRead,
    AlertSort,
    CommentRead,
    DetectionLinkRead,
    TransitionRead,
)

DETECTIONS_SHOWN = 50
EVENT_IDS_SHOWN = 200

_SORTS: dict[AlertSort, tuple[InstrumentedAttribute[Any], type]] = {
    AlertSort.LAST_SEEN: (Alert.last_seen, datetime),
    AlertSort.FIRST_SEEN: (Alert.first_seen, datetime),
    AlertSort.SEVERITY: (Alert.severity_rank, int),
    AlertSort.COUNT: (Alert.count, int),
}


def contains(column: InstrumentedAttribute[str], text: str) -> ColumnElement[bool]:
    """Case-insensitive substring match; ``%`` and ``_`` in ``text`` are literal."""
    return func.lower(column).contains(text.lower(), autoescape=True)


def list_alerts(session: Session, *, query: AlertQuery) -> tuple[Sequence[Alert], str | None]:
    stmt = select(Alert)
    if query.status:
        stmt = stmt.where(Alert.status.in_([s.value for s in query.status]))
    if query.severity:
        stmt = stmt.where(Alert.severity.in_([s.value for s in query.severity]))
    if query.min_severity is not None:
        stmt = stmt.where(Alert.severity_rank >= query.min_severity.rank)
    if query.rule_id:
        stmt = stmt.where(Alert.rule_id == query.rule_id)
    if query.entity:
        stmt = stmt.where(contains(Alert.entity, query.entity))
    if query.assignee:
        stmt = stmt.where(Alert.assignee == query.assignee)
    if query.since is not None:
        stmt = stmt.where(Alert.last_seen >= query.since)
    if query.until is not None:
        stmt = stmt.where(Alert.first_seen <= query.until)
    if query.q:
        stmt = stmt.where(
            or_(
                contains(Alert.title, query.q),
                contains(Alert.entity, query.q),
                contains(Alert.rule_id, query.q),
            )
        )
    column, value_type = _SORTS[query.sort]
    keyset = Keyset(
        name=query.sort.value,
        column=column,
        id_column=Alert.id,
        order=query.order,
        value_type=value_type,
    )
    return page(session, stmt, keyset=keyset, limit=query.limit, cursor=query.cursor)


def incidents_of(session: Session, *, alert_ids: Sequence[str]) -> dict[str, str]:
    """``alert id → incident id`` for those of ``alert_ids`` that belong to an incident."""
    from vigil.incidents.models import IncidentAlert  # incidents build on alerts, not back

    if not alert_ids:
        return {}
    rows = session.execute(
        select(IncidentAlert.alert_id, IncidentAlert.incident_id).where(
            IncidentAlert.alert_id.in_(list(alert_ids))
        )
    ).all()
    return {alert_id: incident_id for alert_id, incident_id in rows}


def read_alerts(session: Session, rows: Sequence[Alert]) -> list[AlertRead]:
    """API shapes of ``rows``, with the incident each one is in (one query for all)."""
    incidents = incidents_of(session, alert_ids=[r.id for r in rows])
    out = []
    for row in rows:
        item = AlertRead.model_validate(row)
        item.incident_id = incidents.get(row.id)
        out.append(item)
    return out


def alert_detail(session: Session, *, alert_id: str) -> AlertDetail:
    alert = get_alert(session, alert_id=alert_id)
    transitions = session.scalars(
        select(AlertTransition)
        .where(AlertTransition.alert_id == alert.id)
        .order_by(AlertTransition.id)
    ).all()
    comments = session.scalars(
        select(AlertComment).where(AlertComment.alert_id == alert.id).order_by(AlertComment.id)
    ).all()
    detections = session.scalars(
        select(AlertDetection)
        .where(AlertDetection.alert_id == alert.id)
        .order_by(AlertDetection.id.desc())
        .limit(DETECTIONS_SHOWN)
    ).all()
    event_ids: dict[str, None] = {}
    for link in detections:
        for event_id in link.event_ids:
            event_ids.setdefault(event_id)
    [base] = read_alerts(session, [alert])
    return AlertDetail(
        **base.model_dump(),
        context=alert.context,
        event_ids=list(event_ids)[:EVENT_IDS_SHOWN],
        detections=[DetectionLinkRead.model_validate(d) for d in detections],
        transitions=[TransitionRead.model_validate(t) for t in transitions],
        comments=[CommentRead.model_validate(c) for c in comments],
    )
