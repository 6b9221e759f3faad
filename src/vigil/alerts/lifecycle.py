"""Working an alert: status transitions, assignment, comments, bulk actions.

Every status or assignee change writes an ``alert_transitions`` row (who, when, from, to, note),
an audit ledger entry (``alert.status`` / ``alert.assign``) and an ``alert_updated`` outbox
event, all in the caller's transaction; comments write a ledger entry (``alert.comment``) but no
event (a comment is not something to page anybody about). The allowed transitions are in
:mod:`vigil.alerts.states`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.alerts.events import AlertSummary, alert_updated
from vigil.alerts.models import Alert, AlertComment, AlertTransition
from vigil.alerts.schemas import BulkAction, BulkItemResult, BulkOutcome, BulkResult
from vigil.alerts.states import CLOSED_STATUSES, AlertStatus, check_transition
from vigil.bus.outbox import emit_many
from vigil.errors import InvalidInputError, InvalidTransitionError, NotFoundError
from vigil.events.envelope import SecurityEvent
from vigil.ledger.schemas import AuditEntryCreate
from vigil.ledger.service import append_many
from vigil.obs.logging import REQUEST_ID


class Keep(Enum):
    """Marker for "leave the assignee as it is" (``None`` means unassign)."""

    KEEP = "keep"


KEEP = Keep.KEEP

_BULK_STATUS = {
    BulkAction.ACKNOWLEDGE: AlertStatus.ACKNOWLEDGED,
    BulkAction.START: AlertStatus.IN_PROGRESS,
    BulkAction.RESOLVE: AlertStatus.RESOLVED,
    BulkAction.FALSE_POSITIVE: AlertStatus.FALSE_POSITIVE,
}


@dataclass
class _Writes:
    """What a request changes, written at the end in bulk."""

    actor: str
    now: datetime
    rows: list[AlertTransition | AlertComment] = field(default_factory=list)
    ledger: list[AuditEntryCreate] = field(default_factory=list)
    events: list[SecurityEvent] = field(default_factory=list)

    def audit(self, alert: Alert, action: str, change: dict[str, Any]) -> None:
        self.ledger.append(
            AuditEntryCreate(
                tenant=alert.tenant_id,
                actor=self.actor,
                action=action,
                target=f"alert:{alert.id}",
                request_id=REQUEST_ID.get(),
                change=change,
                time=self.now,
            )
        )

    def flush(self, session: Session) -> None:
        session.add_all(self.rows)
        session.flush()
        if self.ledger:
            append_many(session, entries=self.ledger)
        by_tenant: dict[str, list[SecurityEvent]] = {}
        for event in self.events:
            by_tenant.setdefault(event.metadata.tenant_id or "", []).append(event)
        for tenant_id, events in by_tenant.items():
            emit_many(session, tenant_id=tenant_id, events=events)


def get_alert(session: Session, *, alert_id: str, for_update: bool = False) -> Alert:
    """The alert, or :class:`NotFoundError` (also for another tenant's alert)."""
    stmt = select(Alert).where(Alert.id == alert_id)
    if for_update:
        stmt = stmt.with_for_update()
    alert = session.scalars(stmt).one_or_none()
    if alert is None:
        raise NotFoundError(f"alert {alert_id} not found")
    return alert


def _comment(alert: Alert, body: str, writes: _Writes) -> AlertComment:
    comment = AlertComment(
        tenant_id=alert.tenant_id,
        alert_id=alert.id,
        author=writes.actor,
        body=body,
        created_at=writes.now,
    )
    writes.rows.append(comment)
    writes.audit(alert, "alert.comment", {"body": body})
    return comment


def _change(
    alert: Alert,
    *,
    status: AlertStatus | None,
    assignee: str | Keep | None,
    note: str | None,
    writes: _Writes,
) -> bool:
    """Apply status/assignee to ``alert``; False when nothing changed (then ``note``, if any,
    becomes a comment). Raises before touching anything when the transition is not allowed."""
    change: dict[str, Any] = {}
    current = AlertStatus(alert.status)
    if status is not None and check_transition(current, status):
        alert.status = status.value
        if current is AlertStatus.NEW and alert.acknowledged_at is None:
            alert.acknowledged_at = writes.now
        if status in CLOSED_STATUSES:
            alert.resolved_at = writes.now
        elif current in CLOSED_STATUSES:
            alert.resolved_at = None
        change["status"] = {"from": current.value, "to": status.value}
    if not isinstance(assignee, Keep) and assignee != alert.assignee:
        change["assignee"] = {"from": alert.assignee, "to": assignee}
        alert.assignee = assignee
    if not change:
        if note:
            _comment(alert, note, writes)
        return False
    alert.updated_at = writes.now
    for kind, values in change.items():
        writes.rows.append(
            AlertTransition(
                tenant_id=alert.tenant_id,
                alert_id=alert.id,
                kind=kind,
                from_value=values["from"],
                to_value=values["to"],
                actor=writes.actor,
                note=note,
                at=writes.now,
            )
        )
        action = "alert.status" if kind == "status" else "alert.assign"
        writes.audit(alert, action, {**values, "note": note})
    writes.events.append(
        alert_updated(AlertSummary.from_row(alert), actor=writes.actor, change=change)
    )
    return True


def update_alert(
    session: Session,
    *,
    alert_id: str,
    actor: str,
    now: datetime,
    status: AlertStatus | None = None,
    assignee: str | Keep | None = KEEP,
    note: str | None = None,
) -> Alert:
    """Change an alert's status and/or assignee (see the module docstring for what is
    recorded). Raises :class:`NotFoundError` or :class:`InvalidTransitionError`."""
    alert = get_alert(session, alert_id=alert_id, for_update=True)
    writes = _Writes(actor=actor, now=now)
    _change(alert, status=status, assignee=assignee, note=note, writes=writes)
    writes.flush(session)
    return alert


def add_comment(
    session: Session, *, alert_id: str, actor: str, body: str, now: datetime
) -> AlertComment:
    alert = get_alert(session, alert_id=alert_id)
    writes = _Writes(actor=actor, now=now)
    comment = _comment(alert, body, writes)
    writes.flush(session)
    return comment


def bulk_update(
    session: Session,
    *,
    ids: Sequence[str],
    action: BulkAction,
    actor: str,
    now: datetime,
    assignee: str | None = None,
    note: str | None = None,
    reopen_to: AlertStatus = AlertStatus.NEW,
) -> BulkResult:
    """Apply one action to many alerts; each id gets its own outcome and a failure (not found,
    transition not allowed) leaves the others going through. One ledger append for all."""
    if action is BulkAction.ASSIGN and not assignee:
        raise InvalidInputError("assign needs an assignee", field="body.assignee")
    if action is BulkAction.COMMENT and not note:
        raise InvalidInputError("comment needs the text in note", field="body.note")
    alerts = {
        a.id: a
        for a in session.scalars(
            select(Alert).where(Alert.id.in_(list(ids))).with_for_update()
        ).all()
    }
    writes = _Writes(actor=actor, now=now)
    results: list[BulkItemResult] = []
    for alert_id in ids:
        alert = alerts.get(alert_id)
        if alert is None:
            results.append(
                BulkItemResult(
                    id=alert_id,
                    ok=False,
                    outcome=BulkOutcome.NOT_FOUND,
                    status=None,
                    error=f"alert {alert_id} not found",
                )
            )
            continue
        try:
            changed = _bulk_one(alert, action, assignee, note, reopen_to, writes)
        except InvalidTransitionError as exc:
            results.append(
                BulkItemResult(
                    id=alert_id,
                    ok=False,
                    outcome=BulkOutcome.INVALID_TRANSITION,
                    status=AlertStatus(alert.status),
                    error=str(exc),
                )
            )
            continue
        results.append(
            BulkItemResult(
                id=alert_id,
                ok=True,
                outcome=BulkOutcome.UPDATED if changed else BulkOutcome.UNCHANGED,
                status=AlertStatus(alert.status),
            )
        )
    writes.flush(session)
    succeeded = sum(1 for r in results if r.ok)
    return BulkResult(succeeded=succeeded, failed=len(results) - succeeded, results=results)


def _bulk_one(
    alert: Alert,
    action: BulkAction,
    assignee: str | None,
    note: str | None,
    reopen_to: AlertStatus,
    writes: _Writes,
) -> bool:
    if action is BulkAction.COMMENT:
        _comment(alert, note or "", writes)
        return True
    if action is BulkAction.ASSIGN:
        return _change(alert, status=None, assignee=assignee, note=note, writes=writes)
    if action is BulkAction.UNASSIGN:
        return _change(alert, status=None, assignee=None, note=note, writes=writes)
    if action is BulkAction.REOPEN:
        if AlertStatus(alert.status) not in CLOSED_STATUSES:
            raise InvalidTransitionError(f"alert {alert.id} is {alert.status}, not closed")
        target = reopen_to
    else:
        target = _BULK_STATUS[action]
    return _change(alert, status=target, assignee=KEEP, note=note, writes=writes)
