"""Escalation policies and the worker's pass, with a controlled clock: steps fire once when due,
stop at acknowledgement, land on the timeline and on the outbox with exactly their channels;
SLA breaches are flagged once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from tests.alerts.helpers import OTHER_TENANT, T0, TENANT, detection, record
from vigil.alerts import lifecycle
from vigil.alerts.models import AlertTransition
from vigil.alerts.states import AlertStatus
from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.incidents import escalation, service
from vigil.incidents.config import IncidentsSettings
from vigil.incidents.escalation_worker import claim_step, policy_levels, run_escalations, tick
from vigil.incidents.models import EscalationStep, Incident
from vigil.incidents.schemas import EscalationPolicyCreate, EscalationPolicyUpdate, IncidentUpdate
from vigil.incidents.sla import evaluate_breaches
from vigil.incidents.states import IncidentStatus
from vigil.obs.metrics import REGISTRY
from vigil.store.tenancy import tenant_session

from .helpers import events, ledger_actions, timeline

ACTOR = "user:ana"


def _policy(
    session: Session, severity: str = "high", applies_to: str = "both", tenant: str = TENANT
):
    data = EscalationPolicyCreate(
        name=f"{severity} on-call",
        severity=severity,
        applies_to=applies_to,
        levels=[
            {"after_minutes": 10, "channels": ["pager-primary"]},
            {"after_minutes": 30, "channels": ["pager-secondary", "slack-soc"]},
        ],
    )
    policy = escalation.create_policy(session, tenant_id=tenant, data=data, actor=ACTOR, now=T0)
    session.commit()
    return policy


def _steps(db: Session) -> list[tuple[str, str, int]]:
    rows = db.execute(
        select(EscalationStep.target_kind, EscalationStep.target_id, EscalationStep.level).order_by(
            EscalationStep.id
        )
    ).all()
    return [(k, t, lv) for k, t, lv in rows]


def _run(db: Session, now: datetime) -> int:
    fired = run_escalations(db, now=now)
    db.commit()
    return fired


def test_policy_crud_and_ledger(tenant_db: Session, db: Session) -> None:
    policy = _policy(tenant_db)
    assert [lv["channels"] for lv in policy.levels] == [
        ["pager-primary"],
        ["pager-secondary", "slack-soc"],
    ]
    with pytest.raises(ConflictError):
        _policy(tenant_db)
    tenant_db.rollback()
    _policy(tenant_db, severity="critical")
    assert len(escalation.list_policies(tenant_db)) == 2
    with pytest.raises(ConflictError):
        escalation.update_policy(
            tenant_db,
            policy_id=policy.id,
            data=EscalationPolicyUpdate(severity="critical"),
            actor=ACTOR,
            now=T0,
        )
    tenant_db.rollback()
    updated = escalation.update_policy(
        tenant_db,
        policy_id=policy.id,
        data=EscalationPolicyUpdate(enabled=False, name="renamed"),
        actor=ACTOR,
        now=T0 + timedelta(minutes=1),
    )
    tenant_db.commit()
    assert (updated.enabled, updated.name, updated.updated_by) == (False, "renamed", ACTOR)
    with pytest.raises(InvalidInputError):
        escalation.update_policy(
            tenant_db,
            policy_id=policy.id,
            data=EscalationPolicyUpdate(enabled=None),
            actor=ACTOR,
            now=T0,
        )
    tenant_db.rollback()
    escalation.delete_policy(tenant_db, policy_id=policy.id, actor=ACTOR, now=T0)
    tenant_db.commit()
    with pytest.raises(NotFoundError):
        escalation.get_policy(tenant_db, policy_id=policy.id)
    assert ledger_actions(db, f"escalation_policy:{policy.id}") == [
        "escalation_policy.create",
        "escalation_policy.update",
        "escalation_policy.delete",
    ]


def test_policy_validation() -> None:
    level = {"after_minutes": 5, "channels": ["a"]}
    with pytest.raises(ValidationError):
        EscalationPolicyCreate(name="x", severity="high", levels=[])
    with pytest.raises(ValidationError):
        EscalationPolicyCreate(name="x", severity="high", levels=[level, level])
    with pytest.raises(ValidationError):
        EscalationPolicyCreate(
            name="x", severity="high", levels=[{"after_minutes": 0, "channels": ["a"]}]
        )
    with pytest.raises(ValidationError):
        EscalationPolicyCreate(
            name="x", severity="high", levels=[{"after_minutes": 5, "channels": []}]
        )
    with pytest.raises(ValidationError):
        EscalationPolicyCreate(name="x", severity="urgent", levels=[level])


def test_policies_are_per_tenant(factory: sessionmaker[Session], tenant_db: Session) -> None:
    mine = _policy(tenant_db)
    other = tenant_session(factory, OTHER_TENANT)
    try:
        theirs = _policy(other, tenant=OTHER_TENANT)  # same severity: another tenant, no clash
        assert [p.id for p in escalation.list_policies(other)] == [theirs.id]
        with pytest.raises(NotFoundError):
            escalation.get_policy(other, policy_id=mine.id)
        with pytest.raises(NotFoundError):
            escalation.update_policy(
                other, policy_id=mine.id, data=EscalationPolicyUpdate(name="x"), actor=ACTOR, now=T0
            )
        with pytest.raises(NotFoundError):
            escalation.delete_policy(other, policy_id=mine.id, actor=ACTOR, now=T0)
    finally:
        other.close()
    assert [p.id for p in escalation.list_policies(tenant_db)] == [mine.id]


def test_incident_escalates_level_by_level_exactly_once(tenant_db: Session, db: Session) -> None:
    _policy(tenant_db)
    record(db, [detection(level="high")], now=T0)
    [incident] = db.scalars(select(Incident)).all()
    assert _run(db, T0 + timedelta(minutes=9)) == 0
    assert _run(db, T0 + timedelta(minutes=10)) == 1
    assert _run(db, T0 + timedelta(minutes=11)) == 0  # level 1 fired already
    assert _steps(db) == [("incident", incident.id, 1)]
    assert _run(db, T0 + timedelta(minutes=45)) == 1
    assert _run(db, T0 + timedelta(hours=5)) == 0  # no level 3
    assert _steps(db) == [("incident", incident.id, 1), ("incident", incident.id, 2)]
    assert [k for k, _ in timeline(db, incident.id)][-2:] == ["escalation", "escalation"]
    first, second = events(db, "escalation")
    assert first["details"]["channels"] == ["pager-primary"] and first["details"]["level"] == 1
    assert second["details"]["channels"] == ["pager-secondary", "slack-soc"]
    assert second["details"]["level"] == 2 and second["details"]["levels"] == 2
    assert second["details"]["target_kind"] == "incident"
    assert second["details"]["incident"]["incident_id"] == incident.id
    assert second["metadata"]["tenant_id"] == TENANT
    assert second["severity"] == "high"
    # Alerts inside an incident escalate through it (policy applies to both).
    assert not any(kind == "alert" for kind, _, _ in _steps(db))


def test_acknowledgement_stops_escalation(tenant_db: Session, db: Session) -> None:
    _policy(tenant_db)
    record(db, [detection(level="high")], now=T0)
    [incident] = db.scalars(select(Incident)).all()
    _run(db, T0 + timedelta(minutes=10))
    service.update_incident(
        tenant_db,
        incident_id=incident.id,
        data=IncidentUpdate(status=IncidentStatus.ACKNOWLEDGED),
        actor=ACTOR,
        now=T0 + timedelta(minutes=12),
    )
    tenant_db.commit()
    assert _run(db, T0 + timedelta(hours=2)) == 0
    assert [lv for *_, lv in _steps(db)] == [1]


def test_alerts_escalate_when_the_policy_says_so(tenant_db: Session, db: Session) -> None:
    _policy(tenant_db, severity="low", applies_to="alerts")
    [out] = record(db, [detection(level="low")], now=T0)  # below the incident threshold
    [other] = record(db, [detection(level="low", host="OTHER")], now=T0)
    lifecycle.update_alert(
        tenant_db, alert_id=other.alert_id, actor=ACTOR, now=T0, status=AlertStatus.ACKNOWLEDGED
    )
    tenant_db.commit()
    assert _run(db, T0 + timedelta(minutes=31)) == 2  # both levels of the unacknowledged alert
    assert _steps(db) == [("alert", out.alert_id, 1), ("alert", out.alert_id, 2)]
    notes = db.scalars(
        select(AlertTransition.to_value).where(
            AlertTransition.alert_id == out.alert_id, AlertTransition.kind == "escalation"
        )
    ).all()
    assert notes == ["level 1", "level 2"]
    [e1, e2] = events(db, "escalation")
    assert e1["details"]["alert"]["alert_id"] == out.alert_id
    assert e2["details"]["channels"] == ["pager-secondary", "slack-soc"]
    # Resolved and reopened: acknowledged once, so it does not escalate again.
    lifecycle.update_alert(
        tenant_db, alert_id=other.alert_id, actor=ACTOR, now=T0, status=AlertStatus.RESOLVED
    )
    lifecycle.update_alert(
        tenant_db, alert_id=other.alert_id, actor=ACTOR, now=T0, status=AlertStatus.NEW
    )
    tenant_db.commit()
    assert _run(db, T0 + timedelta(hours=3)) == 0


def test_disabled_policy_and_other_severity_do_nothing(tenant_db: Session, db: Session) -> None:
    policy = _policy(tenant_db, severity="critical")
    record(db, [detection(level="high")], now=T0)
    assert _run(db, T0 + timedelta(hours=1)) == 0
    escalation.update_policy(
        tenant_db,
        policy_id=policy.id,
        data=EscalationPolicyUpdate(severity="high", enabled=False),
        actor=ACTOR,
        now=T0,
    )
    tenant_db.commit()
    assert _run(db, T0 + timedelta(hours=1)) == 0


def test_a_second_worker_does_not_fire_again(
    factory: sessionmaker[Session], tenant_db: Session, db: Session
) -> None:
    policy = _policy(tenant_db)
    record(db, [detection(level="high")], now=T0)
    [incident] = db.scalars(select(Incident)).all()
    now = T0 + timedelta(minutes=10)
    assert _run(db, now) == 1
    # A replayed pass (a crash before its commit was noticed) finds nothing due.
    with factory() as again:
        assert run_escalations(again, now=now) == 0
        again.commit()
    # Two workers that both saw the step as due: only the first claim inserts the row.
    level = policy_levels(policy)[0]
    with factory() as racer:
        claimed = claim_step(
            racer,
            policy=policy,
            kind="incident",
            target_id=incident.id,
            level=level,
            due_at=now,
            now=now,
        )
        assert claimed is False
        racer.commit()
    assert len(events(db, "escalation")) == 1
    assert db.scalar(select(func.count()).select_from(EscalationStep)) == 1


def test_tick_runs_escalations_and_sla(
    factory: sessionmaker[Session], tenant_db: Session, db: Session
) -> None:
    _policy(tenant_db, severity="critical")
    record(db, [detection(level="critical")], now=T0)
    [incident] = db.scalars(select(Incident)).all()
    settings = IncidentsSettings(escalation_interval_s=3)
    before = (
        REGISTRY.get_sample_value(
            "vigil_sla_breaches_total", {"kind": "acknowledge", "severity": "critical"}
        )
        or 0
    )
    delay = tick(factory, settings, clock=lambda: T0 + timedelta(minutes=16))
    assert delay == 3
    db.expire_all()
    db.refresh(incident)
    assert incident.ack_breached and not incident.resolve_breached
    assert [lv for *_, lv in _steps(db)] == [1]
    kinds = [k for k, _ in timeline(db, incident.id)]
    assert kinds.count("sla_breach") == 1 and kinds.count("escalation") == 1
    tick(factory, settings, clock=lambda: T0 + timedelta(minutes=17))
    assert [k for k, _ in timeline(db, incident.id)].count("sla_breach") == 1
    after = REGISTRY.get_sample_value(
        "vigil_sla_breaches_total", {"kind": "acknowledge", "severity": "critical"}
    )
    assert after == before + 1
    tick(factory, settings, clock=lambda: T0 + timedelta(hours=5))
    db.refresh(incident)
    assert incident.resolve_breached
    breaches = [
        e["details"]["change"]
        for e in events(db, "incident_updated")
        if "sla_breached" in e["details"]["change"]
    ]
    assert breaches == [{"sla_breached": ["acknowledge"]}, {"sla_breached": ["resolve"]}]


def test_sla_breach_needs_the_incident_to_be_late(tenant_db: Session, db: Session) -> None:
    record(db, [detection(level="medium")], now=T0)  # 4 h to acknowledge
    assert evaluate_breaches(db, now=T0 + timedelta(hours=3), limit=100) == 0
    [incident] = db.scalars(select(Incident)).all()
    service.update_incident(
        tenant_db,
        incident_id=incident.id,
        data=IncidentUpdate(status=IncidentStatus.ACKNOWLEDGED),
        actor=ACTOR,
        now=T0 + timedelta(hours=3),
    )
    tenant_db.commit()
    assert evaluate_breaches(db, now=T0 + timedelta(hours=5), limit=100) == 0
    assert evaluate_breaches(db, now=T0 + timedelta(hours=73), limit=100) == 1
    db.commit()
    db.refresh(incident)
    assert not incident.ack_breached and incident.resolve_breached
