"""Incidents by hand: lifecycle (every allowed and forbidden transition), SLA breaches on late
acknowledgement, owner and post-incident fields, comments, adding/moving/removing alerts,
tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.alerts.helpers import OTHER_TENANT, T0, TENANT, raise_alert
from vigil.errors import ConflictError, InvalidInputError, InvalidTransitionError, NotFoundError
from vigil.events.envelope import Severity
from vigil.incidents import service
from vigil.incidents.config import SlaSettings
from vigil.incidents.models import Incident, IncidentAlert
from vigil.incidents.query import incident_detail
from vigil.incidents.schemas import FollowUp, IncidentCreate, IncidentUpdate
from vigil.incidents.states import ALLOWED_TRANSITIONS, IncidentStatus
from vigil.obs.metrics import REGISTRY

from .helpers import events, ledger_actions, timeline

SLA = SlaSettings()
NOW = T0 + timedelta(days=2)
ACTOR = "user:ana"

ALLOWED = [(a, b) for a in IncidentStatus for b in ALLOWED_TRANSITIONS[a]]
FORBIDDEN = [
    (a, b)
    for a in IncidentStatus
    for b in IncidentStatus
    if a != b and b not in ALLOWED_TRANSITIONS[a]
]


def _manual(session: Session, severity: Severity = Severity.HIGH, **kwargs) -> Incident:
    data = IncidentCreate(title="Ransomware on file server", severity=severity, **kwargs)
    incident = service.create_incident(
        session, tenant_id=TENANT, data=data, actor=ACTOR, now=NOW, sla=SLA
    )
    session.commit()
    return incident


def _at(session: Session, status: IncidentStatus) -> Incident:
    incident = _manual(session)
    incident.status = status.value
    session.commit()
    return incident


def test_manual_incident(tenant_db: Session, db: Session) -> None:
    before = REGISTRY.get_sample_value("vigil_incidents_opened_total", {"severity": "low"}) or 0
    incident = _manual(tenant_db, Severity.LOW, owner="ana", description="from a phone call")
    assert (incident.status, incident.severity, incident.owner) == ("open", "low", "ana")
    assert incident.tenant_id == TENANT and incident.opened_by == ACTOR
    assert incident.ack_due_at == NOW + timedelta(hours=24)
    assert incident.resolve_due_at == NOW + timedelta(days=7)
    assert timeline(db, incident.id) == [("opened", ACTOR)]
    assert ledger_actions(db, f"incident:{incident.id}") == ["incident.create"]
    [event] = events(db, "incident_opened")
    assert event["details"]["actor"] == ACTOR and event["details"]["alert_ids"] == []
    after = REGISTRY.get_sample_value("vigil_incidents_opened_total", {"severity": "low"})
    assert after == before + 1


def test_transition_table_is_complete() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(IncidentStatus)
    assert ALLOWED_TRANSITIONS[IncidentStatus.CLOSED] == frozenset()


@pytest.mark.parametrize(("start", "target"), ALLOWED, ids=lambda s: s.value)
def test_allowed_transition(
    tenant_db: Session, db: Session, start: IncidentStatus, target: IncidentStatus
) -> None:
    incident = _at(tenant_db, start)
    service.update_incident(
        tenant_db,
        incident_id=incident.id,
        data=IncidentUpdate(status=target, note="because"),
        actor=ACTOR,
        now=NOW + timedelta(minutes=5),
    )
    tenant_db.commit()
    assert incident.status == target.value
    assert ("status", ACTOR) in timeline(db, incident.id)
    assert ledger_actions(db, f"incident:{incident.id}")[-1] == "incident.status"
    [event] = events(db, "incident_updated")
    assert event["details"]["change"]["status"] == {"from": start.value, "to": target.value}
    if start is IncidentStatus.OPEN:
        assert incident.acknowledged_at == NOW + timedelta(minutes=5)
    if target is IncidentStatus.RESOLVED:
        assert incident.resolved_at == NOW + timedelta(minutes=5)
    if target is IncidentStatus.CLOSED:
        assert incident.closed_at == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(("start", "target"), FORBIDDEN, ids=lambda s: s.value)
def test_forbidden_transition(
    tenant_db: Session, db: Session, start: IncidentStatus, target: IncidentStatus
) -> None:
    incident = _at(tenant_db, start)
    with pytest.raises(InvalidTransitionError):
        service.update_incident(
            tenant_db,
            incident_id=incident.id,
            data=IncidentUpdate(status=target, owner="someone-else"),
            actor=ACTOR,
            now=NOW,
        )
    tenant_db.rollback()
    tenant_db.refresh(incident)
    assert incident.status == start.value and incident.owner is None
    assert events(db, "incident_updated") == []


def test_reopen_clears_resolution_and_late_ack_breaches(tenant_db: Session, db: Session) -> None:
    incident = _manual(tenant_db, Severity.CRITICAL)  # 15 min to acknowledge, 4 h to resolve
    late = NOW + timedelta(minutes=20)
    service.update_incident(
        tenant_db,
        incident_id=incident.id,
        data=IncidentUpdate(status=IncidentStatus.INVESTIGATING),
        actor=ACTOR,
        now=late,
    )
    tenant_db.commit()
    assert incident.ack_breached and not incident.resolve_breached
    assert [k for k, _ in timeline(db, incident.id)] == ["opened", "status", "sla_breach"]
    for status in (IncidentStatus.RESOLVED, IncidentStatus.INVESTIGATING):
        service.update_incident(
            tenant_db,
            incident_id=incident.id,
            data=IncidentUpdate(status=status),
            actor=ACTOR,
            now=late,
        )
    tenant_db.commit()
    assert incident.status == "investigating" and incident.resolved_at is None
    assert incident.acknowledged_at == late and incident.ack_breached


def test_owner_fields_follow_ups_and_comments(tenant_db: Session, db: Session) -> None:
    incident = _manual(tenant_db)
    data = IncidentUpdate(
        owner="bob",
        root_cause="phished VPN credentials",
        lessons_learned="enforce MFA on VPN",
        follow_ups=[FollowUp(text="roll out MFA", owner="it"), FollowUp(text="reset passwords")],
    )
    service.update_incident(tenant_db, incident_id=incident.id, data=data, actor=ACTOR, now=NOW)
    service.update_incident(
        tenant_db, incident_id=incident.id, data=IncidentUpdate(owner=None), actor=ACTOR, now=NOW
    )
    service.update_incident(
        tenant_db,
        incident_id=incident.id,
        data=IncidentUpdate(note="call at 9"),
        actor=ACTOR,
        now=NOW,
    )
    entry = service.add_comment(
        tenant_db, incident_id=incident.id, actor=ACTOR, body="IR firm engaged", now=NOW
    )
    tenant_db.commit()
    assert entry.id is not None and entry.kind == "comment"
    assert incident.owner is None and incident.root_cause == "phished VPN credentials"
    assert incident.follow_ups[0] == {
        "text": "roll out MFA",
        "owner": "it",
        "due": None,
        "done": False,
    }
    kinds = [k for k, _ in timeline(db, incident.id)]
    assert kinds == ["opened", "owner", "updated", "owner", "comment", "comment"]
    assert ledger_actions(db, f"incident:{incident.id}") == [
        "incident.create",
        "incident.assign",
        "incident.update",
        "incident.assign",
        "incident.comment",
        "incident.comment",
    ]
    changes = [e["details"]["change"] for e in events(db, "incident_updated")]
    assert changes[0]["owner"] == {"from": None, "to": "bob"}
    assert changes[0]["fields"] == ["follow_ups", "lessons_learned", "root_cause"]
    with pytest.raises(InvalidInputError):
        service.update_incident(
            tenant_db,
            incident_id=incident.id,
            data=IncidentUpdate(title=None),
            actor=ACTOR,
            now=NOW,
        )


def test_alerts_by_hand(tenant_db: Session, db: Session) -> None:
    low = raise_alert(db, level="low", host="L1")
    critical = raise_alert(db, level="critical", host="C1")  # opens its own incident
    [auto] = tenant_db.scalars(select(Incident)).all()
    with pytest.raises(InvalidInputError) as info:
        _manual(tenant_db, alert_ids=[low])
    assert info.value.field == "body.severity"
    tenant_db.rollback()
    data = IncidentCreate(title="Lateral movement", alert_ids=[low, critical])
    with pytest.raises(ConflictError, match="already belong"):
        service.create_incident(
            tenant_db, tenant_id=TENANT, data=data, actor=ACTOR, now=NOW, sla=SLA
        )
    tenant_db.rollback()
    data = IncidentCreate(title="Lateral movement", alert_ids=[low, critical], move=True)
    incident = service.create_incident(
        tenant_db, tenant_id=TENANT, data=data, actor=ACTOR, now=NOW, sla=SLA
    )
    tenant_db.commit()
    tenant_db.refresh(auto)
    assert incident.severity == "critical" and incident.alert_count == 2
    assert auto.alert_count == 0
    assert [k for k, _ in timeline(db, auto.id)][-1] == "alert_removed"
    # Removing the critical alert drops the severity to the remaining alert's, SLA follows.
    service.remove_alert(
        tenant_db, incident_id=incident.id, alert_id=critical, actor=ACTOR, now=NOW, sla=SLA
    )
    tenant_db.commit()
    assert incident.severity == "low" and incident.alert_count == 1
    assert incident.ack_due_at == NOW + timedelta(hours=24)
    with pytest.raises(NotFoundError):
        service.remove_alert(
            tenant_db, incident_id=incident.id, alert_id=critical, actor=ACTOR, now=NOW, sla=SLA
        )
    service.add_alerts(
        tenant_db,
        incident_id=incident.id,
        alert_ids=[critical],
        move=False,
        actor=ACTOR,
        now=NOW,
        sla=SLA,
    )
    service.add_alerts(  # already there: nothing happens
        tenant_db,
        incident_id=incident.id,
        alert_ids=[critical],
        move=False,
        actor=ACTOR,
        now=NOW,
        sla=SLA,
    )
    tenant_db.commit()
    assert incident.severity == "critical" and incident.alert_count == 2
    members = tenant_db.scalars(
        select(IncidentAlert.alert_id).where(IncidentAlert.incident_id == incident.id)
    ).all()
    assert sorted(members) == sorted([low, critical])
    detail = incident_detail(tenant_db, incident_id=incident.id)
    assert [a.id for a in detail.alerts] == [critical, low]
    assert [t.kind for t in detail.timeline] == [
        "opened",
        "alert_added",
        "alert_added",
        "alert_removed",
        "severity",
        "alert_added",
        "severity",
    ]
    with pytest.raises(InvalidInputError):
        service.add_alerts(
            tenant_db,
            incident_id=incident.id,
            alert_ids=["nope"],
            move=False,
            actor=ACTOR,
            now=NOW,
            sla=SLA,
        )
    incident.status = "closed"
    tenant_db.commit()
    with pytest.raises(ConflictError, match="closed"):
        service.add_alerts(
            tenant_db,
            incident_id=incident.id,
            alert_ids=[low],
            move=False,
            actor=ACTOR,
            now=NOW,
            sla=SLA,
        )


def test_tenant_isolation(tenant_db: Session, db: Session) -> None:
    foreign_alert = raise_alert(db, tenant=OTHER_TENANT, level="critical")
    [foreign] = db.scalars(select(Incident).where(Incident.tenant_id == OTHER_TENANT)).all()
    for call in (
        lambda: incident_detail(tenant_db, incident_id=foreign.id),
        lambda: service.update_incident(
            tenant_db, incident_id=foreign.id, data=IncidentUpdate(owner="x"), actor=ACTOR, now=NOW
        ),
        lambda: service.add_comment(
            tenant_db, incident_id=foreign.id, actor=ACTOR, body="x", now=NOW
        ),
        lambda: service.remove_alert(
            tenant_db, incident_id=foreign.id, alert_id=foreign_alert, actor=ACTOR, now=NOW, sla=SLA
        ),
    ):
        with pytest.raises(NotFoundError):
            call()
        tenant_db.rollback()
    mine = _manual(tenant_db)
    with pytest.raises(InvalidInputError):  # another tenant's alert does not exist for us
        service.add_alerts(
            tenant_db,
            incident_id=mine.id,
            alert_ids=[foreign_alert],
            move=True,
            actor=ACTOR,
            now=NOW,
            sla=SLA,
        )
