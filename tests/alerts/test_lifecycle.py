"""Alert lifecycle: every allowed and every forbidden transition, assignment, comments, bulk,
audit ledger entries and alert_updated events."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.alerts import lifecycle
from vigil.alerts.models import Alert, AlertComment, AlertTransition
from vigil.alerts.schemas import BulkAction, BulkOutcome
from vigil.alerts.states import ALLOWED_TRANSITIONS, AlertStatus
from vigil.bus.models import OutboxEvent
from vigil.errors import InvalidInputError, InvalidTransitionError, NotFoundError
from vigil.ledger.models import AuditEntry

from .helpers import OTHER_TENANT, T0, raise_alert

NOW = T0 + timedelta(hours=1)
ACTOR = "user:u-1"

ALLOWED = [(a, b) for a in AlertStatus for b in ALLOWED_TRANSITIONS[a]]
FORBIDDEN = [
    (a, b) for a in AlertStatus for b in AlertStatus if a != b and b not in ALLOWED_TRANSITIONS[a]
]


def _at_status(db: Session, tenant_db: Session, status: AlertStatus) -> str:
    alert_id = raise_alert(db)
    alert = db.get(Alert, alert_id)
    assert alert is not None
    alert.status = status.value
    db.commit()
    return alert_id


def _ledger(db: Session, alert_id: str) -> list[tuple[str, str]]:
    rows = db.execute(select(AuditEntry.action, AuditEntry.actor).order_by(AuditEntry.seq)).all()
    data = db.scalars(select(AuditEntry.data).order_by(AuditEntry.seq)).all()
    return [
        (action, actor)
        for (action, actor), raw in zip(rows, data, strict=True)
        if orjson.loads(raw)["target"] == f"alert:{alert_id}"
    ]


def _updates(db: Session) -> list[dict]:
    rows = db.scalars(
        select(OutboxEvent.body)
        .where(OutboxEvent.event_type == "alert_updated")
        .order_by(OutboxEvent.seq)
    )
    return [orjson.loads(b) for b in rows]


def test_transition_table_is_complete() -> None:
    assert len(ALLOWED) + len(FORBIDDEN) == len(AlertStatus) * (len(AlertStatus) - 1)
    assert set(ALLOWED_TRANSITIONS) == set(AlertStatus)


@pytest.mark.parametrize(("start", "target"), ALLOWED, ids=lambda s: s.value)
def test_allowed_transition(
    db: Session, tenant_db: Session, start: AlertStatus, target: AlertStatus
) -> None:
    alert_id = _at_status(db, tenant_db, start)
    alert = lifecycle.update_alert(
        tenant_db, alert_id=alert_id, actor=ACTOR, now=NOW, status=target, note="why"
    )
    tenant_db.commit()
    assert alert.status == target.value
    [row] = tenant_db.scalars(select(AlertTransition)).all()
    assert (row.kind, row.from_value, row.to_value, row.actor, row.note, row.at) == (
        "status",
        start.value,
        target.value,
        ACTOR,
        "why",
        NOW,
    )
    assert _ledger(db, alert_id) == [("alert.status", ACTOR)]
    [event] = _updates(db)
    assert event["details"]["change"] == {"status": {"from": start.value, "to": target.value}}
    assert event["details"]["status"] == target.value
    assert event["details"]["actor"] == ACTOR
    assert event["metadata"]["correlation_id"] == alert_id
    # Timestamps: leaving `new` acknowledges; closing sets resolved_at; reopening clears it.
    if start is AlertStatus.NEW:
        assert alert.acknowledged_at == NOW
    if target in (AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE):
        assert alert.resolved_at == NOW
    else:
        assert alert.resolved_at is None


@pytest.mark.parametrize(("start", "target"), FORBIDDEN, ids=lambda s: s.value)
def test_forbidden_transition(
    db: Session, tenant_db: Session, start: AlertStatus, target: AlertStatus
) -> None:
    alert_id = _at_status(db, tenant_db, start)
    with pytest.raises(InvalidTransitionError, match=f"from {start.value} to {target.value}"):
        lifecycle.update_alert(
            tenant_db, alert_id=alert_id, actor=ACTOR, now=NOW, status=target, assignee="bob"
        )
    tenant_db.rollback()
    alert = tenant_db.get(Alert, alert_id)
    assert alert is not None and alert.status == start.value and alert.assignee is None
    assert tenant_db.scalars(select(AlertTransition)).all() == []
    assert _ledger(db, alert_id) == []


def test_same_status_is_a_no_op_and_a_note_becomes_a_comment(
    db: Session, tenant_db: Session
) -> None:
    alert_id = raise_alert(db)
    alert = lifecycle.update_alert(
        tenant_db, alert_id=alert_id, actor=ACTOR, now=NOW, status=AlertStatus.NEW, note="seen"
    )
    tenant_db.commit()
    assert alert.status == "new" and alert.acknowledged_at is None
    assert tenant_db.scalars(select(AlertTransition)).all() == []
    [comment] = tenant_db.scalars(select(AlertComment)).all()
    assert (comment.body, comment.author) == ("seen", ACTOR)
    assert _updates(db) == []
    assert _ledger(db, alert_id) == [("alert.comment", ACTOR)]


def test_reopened_alert_keeps_its_first_acknowledgement(db: Session, tenant_db: Session) -> None:
    alert_id = raise_alert(db)
    for step, status in enumerate(
        [AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED, AlertStatus.NEW, AlertStatus.IN_PROGRESS]
    ):
        lifecycle.update_alert(
            tenant_db,
            alert_id=alert_id,
            actor=ACTOR,
            now=NOW + timedelta(minutes=step),
            status=status,
        )
        tenant_db.commit()
    alert = tenant_db.get(Alert, alert_id)
    assert alert is not None
    assert alert.acknowledged_at == NOW and alert.resolved_at is None
    kinds = [
        (t.from_value, t.to_value)
        for t in tenant_db.scalars(select(AlertTransition).order_by(AlertTransition.id))
    ]
    assert kinds == [
        ("new", "acknowledged"),
        ("acknowledged", "resolved"),
        ("resolved", "new"),
        ("new", "in_progress"),
    ]


def test_assignment_and_unassignment(db: Session, tenant_db: Session) -> None:
    alert_id = raise_alert(db)
    lifecycle.update_alert(
        tenant_db,
        alert_id=alert_id,
        actor=ACTOR,
        now=NOW,
        status=AlertStatus.IN_PROGRESS,
        assignee="u-7",
    )
    lifecycle.update_alert(tenant_db, alert_id=alert_id, actor=ACTOR, now=NOW, assignee="u-7")
    lifecycle.update_alert(tenant_db, alert_id=alert_id, actor=ACTOR, now=NOW, assignee=None)
    tenant_db.commit()
    rows = [
        (t.kind, t.from_value, t.to_value)
        for t in tenant_db.scalars(select(AlertTransition).order_by(AlertTransition.id))
    ]
    assert rows == [
        ("status", "new", "in_progress"),
        ("assignee", None, "u-7"),
        ("assignee", "u-7", None),
    ]
    assert [a for a, _ in _ledger(db, alert_id)] == ["alert.status", "alert.assign", "alert.assign"]
    changes = [e["details"]["change"] for e in _updates(db)]
    assert changes == [
        {"status": {"from": "new", "to": "in_progress"}, "assignee": {"from": None, "to": "u-7"}},
        {"assignee": {"from": "u-7", "to": None}},
    ]


def test_comments(db: Session, tenant_db: Session) -> None:
    alert_id = raise_alert(db)
    comment = lifecycle.add_comment(
        tenant_db, alert_id=alert_id, actor=ACTOR, body="looks like a pentest", now=NOW
    )
    tenant_db.commit()
    assert comment.id is not None and comment.created_at == NOW
    assert _ledger(db, alert_id) == [("alert.comment", ACTOR)]


def test_another_tenants_alert_is_not_found(db: Session, tenant_db: Session) -> None:
    foreign = raise_alert(db, tenant=OTHER_TENANT)
    with pytest.raises(NotFoundError):
        lifecycle.update_alert(
            tenant_db, alert_id=foreign, actor=ACTOR, now=NOW, status=AlertStatus.RESOLVED
        )
    with pytest.raises(NotFoundError):
        lifecycle.add_comment(tenant_db, alert_id=foreign, actor=ACTOR, body="x", now=NOW)
    tenant_db.rollback()
    result = lifecycle.bulk_update(
        tenant_db, ids=[foreign], action=BulkAction.RESOLVE, actor=ACTOR, now=NOW
    )
    assert result.results[0].outcome is BulkOutcome.NOT_FOUND
    alert = db.get(Alert, foreign)
    assert alert is not None and alert.status == "new"


def test_bulk_mixed_results(db: Session, tenant_db: Session) -> None:
    fresh = raise_alert(db, host="A")
    acked = _at_status(db, tenant_db, AlertStatus.ACKNOWLEDGED)
    closed = raise_alert(db, host="C")
    lifecycle.update_alert(
        tenant_db, alert_id=closed, actor=ACTOR, now=NOW, status=AlertStatus.RESOLVED
    )
    tenant_db.commit()
    result = lifecycle.bulk_update(
        tenant_db,
        ids=[fresh, acked, closed, "missing"],
        action=BulkAction.ACKNOWLEDGE,
        actor=ACTOR,
        now=NOW,
        note="triage",
    )
    tenant_db.commit()
    outcomes = [(r.id, r.ok, r.outcome, r.status) for r in result.results]
    assert outcomes == [
        (fresh, True, BulkOutcome.UPDATED, AlertStatus.ACKNOWLEDGED),
        (acked, True, BulkOutcome.UNCHANGED, AlertStatus.ACKNOWLEDGED),
        (closed, False, BulkOutcome.INVALID_TRANSITION, AlertStatus.RESOLVED),
        ("missing", False, BulkOutcome.NOT_FOUND, None),
    ]
    assert (result.succeeded, result.failed) == (2, 2)
    assert _ledger(db, fresh) == [("alert.status", ACTOR)]


def test_bulk_reopen_assign_comment(db: Session, tenant_db: Session) -> None:
    a = raise_alert(db, host="A")
    b = raise_alert(db, host="B")
    lifecycle.bulk_update(
        tenant_db, ids=[a, b], action=BulkAction.FALSE_POSITIVE, actor=ACTOR, now=NOW
    )
    result = lifecycle.bulk_update(
        tenant_db,
        ids=[a, b],
        action=BulkAction.REOPEN,
        actor=ACTOR,
        now=NOW,
        reopen_to=AlertStatus.IN_PROGRESS,
    )
    assert [r.status for r in result.results] == [AlertStatus.IN_PROGRESS] * 2
    again = lifecycle.bulk_update(
        tenant_db, ids=[a], action=BulkAction.REOPEN, actor=ACTOR, now=NOW
    )
    assert again.results[0].outcome is BulkOutcome.INVALID_TRANSITION
    lifecycle.bulk_update(
        tenant_db, ids=[a, b], action=BulkAction.ASSIGN, actor=ACTOR, now=NOW, assignee="u-2"
    )
    lifecycle.bulk_update(
        tenant_db, ids=[a, b], action=BulkAction.COMMENT, actor=ACTOR, now=NOW, note="same actor"
    )
    lifecycle.bulk_update(tenant_db, ids=[b], action=BulkAction.UNASSIGN, actor=ACTOR, now=NOW)
    tenant_db.commit()
    alerts = {x.id: x for x in tenant_db.scalars(select(Alert))}
    assert alerts[a].assignee == "u-2" and alerts[b].assignee is None
    assert len(tenant_db.scalars(select(AlertComment)).all()) == 2
    with pytest.raises(InvalidInputError) as info:
        lifecycle.bulk_update(tenant_db, ids=[a], action=BulkAction.ASSIGN, actor=ACTOR, now=NOW)
    assert info.value.field == "body.assignee"
    with pytest.raises(InvalidInputError):
        lifecycle.bulk_update(tenant_db, ids=[a], action=BulkAction.COMMENT, actor=ACTOR, now=NOW)
