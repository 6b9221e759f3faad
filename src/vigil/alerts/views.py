"""HTTP routes of the alerts domain: translate HTTP to service calls and back, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy.orm import Session

from vigil.alerts import lifecycle, query
from vigil.alerts.schemas import (
    AlertBulkRequest,
    AlertDetail,
    AlertPage,
    AlertQuery,
    AlertRead,
    AlertUpdate,
    BulkResult,
    CommentCreate,
    CommentRead,
)
from vigil.api.deps import require, tenant_db
from vigil.identity.principal import Permission, Principal

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

ReadAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_READ))]
WriteAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))]
Db = Annotated[Session, Depends(tenant_db)]


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("", summary="Alerts, filtered, sorted and paged with a cursor")
def list_alerts(_p: ReadAlerts, session: Db, q: Annotated[AlertQuery, Query()]) -> AlertPage:
    rows, next_cursor = query.list_alerts(session, query=q)
    return AlertPage(items=query.read_alerts(session, rows), next_cursor=next_cursor)


@router.post("/bulk", summary="One action on many alerts, with a result per alert")
def bulk(principal: WriteAlerts, session: Db, body: AlertBulkRequest) -> BulkResult:
    result = lifecycle.bulk_update(
        session,
        ids=body.ids,
        action=body.action,
        actor=principal.actor,
        now=_now(),
        assignee=body.assignee,
        note=body.note,
        reopen_to=body.reopen_to,
    )
    session.commit()
    return result


@router.get("/{alert_id}", summary="One alert with its transitions, comments and events")
def get_alert(_p: ReadAlerts, session: Db, alert_id: str) -> AlertDetail:
    return query.alert_detail(session, alert_id=alert_id)


@router.patch("/{alert_id}", summary="Change status and/or assignee (409 when not allowed)")
def update_alert(
    principal: WriteAlerts, session: Db, alert_id: str, body: AlertUpdate
) -> AlertRead:
    fields = body.model_fields_set
    alert = lifecycle.update_alert(
        session,
        alert_id=alert_id,
        actor=principal.actor,
        now=_now(),
        status=body.status,
        assignee=body.assignee if "assignee" in fields else lifecycle.KEEP,
        note=body.note,
    )
    session.commit()
    [read] = query.read_alerts(session, [alert])
    return read


@router.post("/{alert_id}/comments", status_code=201, summary="Comment on an alert")
def add_comment(
    principal: WriteAlerts, session: Db, alert_id: str, body: CommentCreate
) -> CommentRead:
    comment = lifecycle.add_comment(
        session, alert_id=alert_id, actor=principal.actor, body=body.body, now=_now()
    )
    session.commit()
    return CommentRead.model_validate(comment)
