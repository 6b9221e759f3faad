"""HTTP routes of the alerts domain: translate HTTP to service calls and back, nothing else.

Besides the route's permission, every alert is checked against the tenant's access rules with
its attributes (:func:`alert_resource`: severity, tags, assignee as owner): a single alert the
caller may not read or change answers 403 (and records an ``access_denied`` event), a list
leaves such alerts out, and a bulk action reports them as ``forbidden``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.alerts import lifecycle, query
from vigil.alerts.models import Alert
from vigil.alerts.schemas import (
    AlertBulkRequest,
    AlertDetail,
    AlertPage,
    AlertQuery,
    AlertRead,
    AlertUpdate,
    BulkItemResult,
    BulkOutcome,
    BulkResult,
    CommentCreate,
    CommentRead,
)
from vigil.api.deps import authorize_resource, require, tenant_db, visible_page
from vigil.errors import PermissionDeniedError
from vigil.identity.principal import Permission, Principal

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

ReadAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_READ))]
WriteAlerts = Annotated[Principal, Depends(require(Permission.ALERTS_WRITE))]
Db = Annotated[Session, Depends(tenant_db)]


def _now() -> datetime:
    return datetime.now(UTC)


def alert_resource(alert: Alert | AlertRead, *, tenant_id: str) -> dict[str, Any]:
    """What access rules see of an alert (``owner``: its assignee)."""
    return {
        "type": "alert",
        "id": alert.id,
        "tenant_id": tenant_id,
        "severity": str(alert.severity),
        "tags": list(alert.tags or []),
        "owner": alert.assignee,
    }


def _resources(rows: Sequence[Alert]) -> list[dict[str, Any]]:
    return [alert_resource(r, tenant_id=r.tenant_id) for r in rows]


def _checked(
    request: Request,
    principal: Principal,
    session: Session,
    alert_id: str,
    *permissions: str,
    lock: bool = False,
) -> Alert:
    """The alert (404 if none) once the caller passed ``permissions`` on it (403 otherwise).
    ``lock``: load it FOR UPDATE, as the change that follows will (a plain load first would
    leave that change working on a stale copy)."""
    alert = lifecycle.get_alert(session, alert_id=alert_id, for_update=lock)
    for permission in permissions:
        authorize_resource(
            request, principal, permission, alert_resource(alert, tenant_id=alert.tenant_id)
        )
    return alert


@router.get(
    "",
    summary="Alerts, filtered, sorted and paged with a cursor (alerts the access rules hide are "
    "left out; a page may then be short: follow next_cursor)",
)
def list_alerts(
    request: Request, principal: ReadAlerts, session: Db, q: Annotated[AlertQuery, Query()]
) -> AlertPage:
    def fetch(cursor: str | None, limit: int) -> tuple[Sequence[Alert], str | None]:
        return query.list_alerts(
            session, query=q.model_copy(update={"cursor": cursor, "limit": limit})
        )

    rows, next_cursor = visible_page(
        request,
        principal,
        Permission.ALERTS_READ,
        fetch=fetch,
        resources=_resources,
        cursor=q.cursor,
        limit=q.limit,
    )
    return AlertPage(items=query.read_alerts(session, rows), next_cursor=next_cursor)


@router.post(
    "/bulk",
    summary="One action on many alerts, with a result per alert (`forbidden` where the access "
    "rules deny the change)",
)
def bulk(
    request: Request, principal: WriteAlerts, session: Db, body: AlertBulkRequest
) -> BulkResult:
    # Locked as bulk_update will lock them, so it does not act on stale copies.
    found = session.scalars(select(Alert).where(Alert.id.in_(body.ids)).with_for_update()).all()
    denied: dict[str, str] = {}
    for alert in found:
        try:
            authorize_resource(
                request,
                principal,
                Permission.ALERTS_WRITE,
                alert_resource(alert, tenant_id=alert.tenant_id),
            )
        except PermissionDeniedError as exc:
            denied[alert.id] = str(exc)
    result = lifecycle.bulk_update(
        session,
        ids=[i for i in body.ids if i not in denied],
        action=body.action,
        actor=principal.actor,
        now=_now(),
        assignee=body.assignee,
        note=body.note,
        reopen_to=body.reopen_to,
    )
    session.commit()
    if not denied:
        return result
    done = {r.id: r for r in result.results}
    results = [
        done.get(i)
        or BulkItemResult(
            id=i, ok=False, outcome=BulkOutcome.FORBIDDEN, status=None, error=denied[i]
        )
        for i in body.ids
    ]
    succeeded = sum(1 for r in results if r.ok)
    return BulkResult(succeeded=succeeded, failed=len(results) - succeeded, results=results)


@router.get("/{alert_id}", summary="One alert with its transitions, comments and events")
def get_alert(request: Request, principal: ReadAlerts, session: Db, alert_id: str) -> AlertDetail:
    _checked(request, principal, session, alert_id, Permission.ALERTS_READ)
    return query.alert_detail(session, alert_id=alert_id)


@router.patch("/{alert_id}", summary="Change status and/or assignee (409 when not allowed)")
def update_alert(
    request: Request, principal: WriteAlerts, session: Db, alert_id: str, body: AlertUpdate
) -> AlertRead:
    # The answer shows the alert: reading it must be allowed too.
    _checked(
        request,
        principal,
        session,
        alert_id,
        Permission.ALERTS_WRITE,
        Permission.ALERTS_READ,
        lock=True,
    )
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
    request: Request, principal: WriteAlerts, session: Db, alert_id: str, body: CommentCreate
) -> CommentRead:
    _checked(request, principal, session, alert_id, Permission.ALERTS_WRITE)
    comment = lifecycle.add_comment(
        session, alert_id=alert_id, actor=principal.actor, body=body.body, now=_now()
    )
    session.commit()
    return CommentRead.model_validate(comment)
