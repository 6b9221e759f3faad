"""The escalation worker: fire due escalation levels exactly once, and flag SLA breaches.

Every tick (``incidents.escalation_interval_s``, default 5 s), in one transaction on a system
session (all tenants):

* For every enabled policy and each of its levels (numbered from 1): the targets of the policy's
  tenant and severity that nobody has acknowledged (``acknowledged_at`` is empty: an alert still
  ``new`` that was never acknowledged; an incident still ``open``) and that were opened at least
  ``after_minutes`` ago, and for which that level has not fired, get a step. Alerts that belong to
  an incident are left to their incident when the policy applies to both (the incident is the
  unit of work then). A reopened alert was acknowledged before and does not escalate again.
* A step is one ``escalation_steps`` row, inserted with "on conflict do nothing" against the
  unique ``(target_kind, target_id, level)``: if two workers race, or a tick is replayed after a
  crash, the row exists once and only the worker that inserted it records the rest. The rest is
  a timeline entry (incidents) or an ``escalation`` transition (alerts), and an ``escalation``
  outbox event whose ``details.channels`` are exactly the level's channel ids.
* :func:`vigil.incidents.sla.evaluate_breaches` flags SLA breaches.

Levels that are due together (a worker that was down, a policy created late) all fire in the
same tick, each once. A level number fires once per target whatever policy fired it: changing a
policy's levels, or an incident moving to another severity's policy, continues with the levels
that have not fired yet.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from vigil.alerts.events import AlertSummary
from vigil.alerts.models import Alert, AlertTransition
from vigil.alerts.states import AlertStatus
from vigil.alerts.types import table_of
from vigil.bus.outbox import emit
from vigil.events.envelope import Severity
from vigil.incidents import events
from vigil.incidents.config import IncidentsSettings
from vigil.incidents.models import EscalationPolicy, EscalationStep, Incident, IncidentAlert
from vigil.incidents.schemas import AppliesTo
from vigil.incidents.sla import SYSTEM_ACTOR, evaluate_breaches
from vigil.incidents.states import IncidentStatus
from vigil.incidents.timeline import TimelineItem, TimelineKind, record
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.escalation")

ALERT = "alert"
INCIDENT = "incident"


@dataclass(frozen=True, slots=True)
class Level:
    number: int
    after_minutes: float
    channels: list[str]


def policy_levels(policy: EscalationPolicy) -> list[Level]:
    ordered = sorted(policy.levels, key=lambda lv: float(lv["after_minutes"]))
    return [
        Level(number=i, after_minutes=float(lv["after_minutes"]), channels=list(lv["channels"]))
        for i, lv in enumerate(ordered, start=1)
    ]


def claim_step(
    session: Session,
    *,
    policy: EscalationPolicy,
    kind: str,
    target_id: str,
    level: Level,
    due_at: datetime,
    now: datetime,
) -> bool:
    """Insert the step row unless it exists; True when this call inserted it."""
    values = {
        "tenant_id": policy.tenant_id,
        "target_kind": kind,
        "target_id": target_id,
        "level": level.number,
        "policy_id": policy.id,
        "channels": level.channels,
        "due_at": due_at,
        "fired_at": now,
    }
    table = table_of(EscalationStep)
    dialect = session.get_bind().dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(values).on_conflict_do_nothing()
    else:  # other backends: the unique constraint still refuses a second row
        stmt = insert(table).values(values)
    # RETURNING names the inserted row; a skipped conflict returns nothing (rowcount is not
    # reliable for ON CONFLICT on every driver).
    inserted = session.connection().execute(stmt.returning(table.c.id)).first()
    return inserted is not None


def _not_fired(kind: str, target_id: Any, level: int) -> Any:
    return ~exists().where(
        EscalationStep.target_kind == kind,
        EscalationStep.target_id == target_id,
        EscalationStep.level == level,
    )


def _escalate_alerts(
    session: Session, policy: EscalationPolicy, level: Level, *, now: datetime, limit: int
) -> int:
    cutoff = now - timedelta(minutes=level.after_minutes)
    stmt = select(Alert).where(
        Alert.tenant_id == policy.tenant_id,
        Alert.severity == policy.severity,
        Alert.status == AlertStatus.NEW.value,
        Alert.acknowledged_at.is_(None),
        Alert.created_at <= cutoff,
        _not_fired(ALERT, Alert.id, level.number),
    )
    if policy.applies_to == AppliesTo.BOTH:
        stmt = stmt.where(~exists().where(IncidentAlert.alert_id == Alert.id))
    fired = 0
    stmt = stmt.order_by(Alert.created_at).limit(limit)
    for alert in session.scalars(stmt.execution_options(populate_existing=True)):
        due = alert.created_at + timedelta(minutes=level.after_minutes)
        if not claim_step(
            session, policy=policy, kind=ALERT, target_id=alert.id, level=level, due_at=due, now=now
        ):
            continue
        session.add(
            AlertTransition(
                tenant_id=alert.tenant_id,
                alert_id=alert.id,
                kind="escalation",
                from_value=None,
                to_value=f"level {level.number}",
                actor=SYSTEM_ACTOR,
                note=f"not acknowledged within {level.after_minutes:g} min; notified "
                + ", ".join(level.channels),
                at=now,
            )
        )
        summary = AlertSummary.from_row(alert)
        emit(
            session,
            tenant_id=alert.tenant_id,
            event=events.escalation(
                tenant_id=alert.tenant_id,
                severity=summary.severity,
                target_kind=ALERT,
                target=summary.details(),
                level=level.number,
                levels=len(policy.levels),
                channels=level.channels,
                policy_id=policy.id,
                minutes=level.after_minutes,
                correlation_id=summary.stream_correlation_id,
            ),
        )
        fired += 1
    return fired


def _escalate_incidents(
    session: Session, policy: EscalationPolicy, level: Level, *, now: datetime, limit: int
) -> int:
    cutoff = now - timedelta(minutes=level.after_minutes)
    stmt = (
        select(Incident)
        .where(
            Incident.tenant_id == policy.tenant_id,
            Incident.severity == policy.severity,
            Incident.status == IncidentStatus.OPEN.value,
            Incident.acknowledged_at.is_(None),
            Incident.opened_at <= cutoff,
            _not_fired(INCIDENT, Incident.id, level.number),
        )
        .order_by(Incident.opened_at)
        .limit(limit)
        .execution_options(populate_existing=True)
    )
    fired = 0
    items: list[TimelineItem] = []
    for incident in session.scalars(stmt):
        due = incident.opened_at + timedelta(minutes=level.after_minutes)
        if not claim_step(
            session,
            policy=policy,
            kind=INCIDENT,
            target_id=incident.id,
            level=level,
            due_at=due,
            now=now,
        ):
            continue
        items.append(
            TimelineItem(
                incident_id=incident.id,
                tenant_id=incident.tenant_id,
                kind=TimelineKind.ESCALATION,
                actor=SYSTEM_ACTOR,
                summary=f"escalation level {level.number}: not acknowledged within "
                f"{level.after_minutes:g} min; notified {', '.join(level.channels)}",
                at=now,
                data={"level": level.number, "channels": level.channels, "policy_id": policy.id},
            )
        )
        emit(
            session,
            tenant_id=incident.tenant_id,
            event=events.escalation(
                tenant_id=incident.tenant_id,
                severity=Severity(incident.severity),
                target_kind=INCIDENT,
                target=events.incident_details(incident),
                level=level.number,
                levels=len(policy.levels),
                channels=level.channels,
                policy_id=policy.id,
                minutes=level.after_minutes,
                correlation_id=incident.id,
            ),
        )
        fired += 1
    record(session, items)
    return fired


def run_escalations(session: Session, *, now: datetime, limit: int = 500) -> int:
    """Fire every due step (at most ``limit`` per level and kind); the number fired."""
    fired = 0
    policies = session.scalars(
        select(EscalationPolicy)
        .where(EscalationPolicy.enabled.is_(True))
        .order_by(EscalationPolicy.tenant_id, EscalationPolicy.severity)
    ).all()
    for policy in policies:
        for level in policy_levels(policy):
            if policy.applies_to in (AppliesTo.ALERTS, AppliesTo.BOTH):
                fired += _escalate_alerts(session, policy, level, now=now, limit=limit)
            if policy.applies_to in (AppliesTo.INCIDENTS, AppliesTo.BOTH):
                fired += _escalate_incidents(session, policy, level, now=now, limit=limit)
    return fired


def tick(
    sessions: sessionmaker[Session],
    settings: IncidentsSettings,
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> float:
    """One pass of the worker (escalations, then SLA breaches) in one transaction; returns the
    seconds until the next pass."""
    session = system_session(sessions)
    try:
        now = clock()
        fired = run_escalations(session, now=now, limit=settings.escalation_batch)
        breached = evaluate_breaches(session, now=now, limit=settings.escalation_batch)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
    if fired or breached:
        log.info("escalation pass", extra={"steps_fired": fired, "sla_breaches": breached})
    return settings.escalation_interval_s
