"""HTTP routes of the incidents domain (/v1/incidents and /v1/escalation-policies): translate
HTTP to service calls and back, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from vigil.alerts.schemas import CommentCreate
from vigil.api.deps import get_runtime, require, tenant_db
from vigil.identity.principal import Permission, Principal
from vigil.incidents import escalation, query, service
from vigil.incidents.config import SlaSettings
from vigil.incidents.schemas import (
    EscalationPolicyCreate,
    EscalationPolicyRead,
    EscalationPolicyUpdate,
    IncidentAlertsAdd,
    IncidentCreate,
    IncidentDetail,
    IncidentPage,
    IncidentQuery,
    IncidentRead,
    IncidentUpdate,
    TimelineEntryRead,
)

incidents = APIRouter(prefix="/v1/incidents", tags=["incidents"])
policies = APIRouter(prefix="/v1/escalation-policies", tags=["escalation"])

ReadIncidents = Annotated[Principal, Depends(require(Permission.INCIDENTS_READ))]
WriteIncidents = Annotated[Principal, Depends(require(Permission.INCIDENTS_WRITE))]
Db = Annotated[Session, Depends(tenant_db)]


def _now() -> datetime:
    return datetime.now(UTC)


def _sla(request: Request) -> SlaSettings:
    return get_runtime(request).settings.incidents.sla


@incidents.get("", summary="Incidents, filtered, sorted and paged with a cursor")
def list_incidents(
    _p: ReadIncidents, session: Db, q: Annotated[IncidentQuery, Query()]
) -> IncidentPage:
    rows, next_cursor = query.list_incidents(session, query=q)
    return IncidentPage(
        items=[IncidentRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@incidents.post("", status_code=201, summary="Open an incident by hand (optionally with alerts)")
def create_incident(
    request: Request, principal: WriteIncidents, session: Db, body: IncidentCreate
) -> IncidentDetail:
    incident = service.create_incident(
        session,
        tenant_id=principal.tenant_id,
        data=body,
        actor=principal.actor,
        now=_now(),
        sla=_sla(request),
    )
    session.commit()
    return query.incident_detail(session, incident_id=incident.id)


@incidents.get("/{incident_id}", summary="One incident with its alerts and timeline")
def get_incident(_p: ReadIncidents, session: Db, incident_id: str) -> IncidentDetail:
    return query.incident_detail(session, incident_id=incident_id)


@incidents.patch("/{incident_id}", summary="Change status, owner or post-incident fields")
def update_incident(
    principal: WriteIncidents, session: Db, incident_id: str, body: IncidentUpdate
) -> IncidentRead:
    incident = service.update_incident(
        session, incident_id=incident_id, data=body, actor=principal.actor, now=_now()
    )
    session.commit()
    return IncidentRead.model_validate(incident)


@incidents.post("/{incident_id}/comments", status_code=201, summary="Comment on an incident")
def add_comment(
    principal: WriteIncidents, session: Db, incident_id: str, body: CommentCreate
) -> TimelineEntryRead:
    entry = service.add_comment(
        session, incident_id=incident_id, actor=principal.actor, body=body.body, now=_now()
    )
    session.commit()
    return TimelineEntryRead.model_validate(entry)


@incidents.post("/{incident_id}/alerts", summary="Add alerts (move=true takes them from another)")
def add_alerts(
    request: Request,
    principal: WriteIncidents,
    session: Db,
    incident_id: str,
    body: IncidentAlertsAdd,
) -> IncidentRead:
    incident = service.add_alerts(
        session,
        incident_id=incident_id,
        alert_ids=body.alert_ids,
        move=body.move,
        actor=principal.actor,
        now=_now(),
        sla=_sla(request),
    )
    session.commit()
    return IncidentRead.model_validate(incident)


@incidents.delete("/{incident_id}/alerts/{alert_id}", summary="Take an alert out of the incident")
def remove_alert(
    request: Request, principal: WriteIncidents, session: Db, incident_id: str, alert_id: str
) -> IncidentRead:
    incident = service.remove_alert(
        session,
        incident_id=incident_id,
        alert_id=alert_id,
        actor=principal.actor,
        now=_now(),
        sla=_sla(request),
    )
    session.commit()
    return IncidentRead.model_validate(incident)


@policies.get("", summary="The tenant's escalation policies")
def list_policies(_p: ReadIncidents, session: Db) -> list[EscalationPolicyRead]:
    return [EscalationPolicyRead.model_validate(p) for p in escalation.list_policies(session)]


@policies.post("", status_code=201, summary="Create the policy of a severity (409 if it exists)")
def create_policy(
    principal: WriteIncidents, session: Db, body: EscalationPolicyCreate
) -> EscalationPolicyRead:
    policy = escalation.create_policy(
        session, tenant_id=principal.tenant_id, data=body, actor=principal.actor, now=_now()
    )
    session.commit()
    return EscalationPolicyRead.model_validate(policy)


@policies.get("/{policy_id}", summary="One escalation policy")
def get_policy(_p: ReadIncidents, session: Db, policy_id: str) -> EscalationPolicyRead:
    return EscalationPolicyRead.model_validate(escalation.get_policy(session, policy_id=policy_id))


@policies.patch("/{policy_id}", summary="Change an escalation policy")
def update_policy(
    principal: WriteIncidents, session: Db, policy_id: str, body: EscalationPolicyUpdate
) -> EscalationPolicyRead:
    policy = escalation.update_policy(
        session, policy_id=policy_id, data=body, actor=principal.actor, now=_now()
    )
    session.commit()
    return EscalationPolicyRead.model_validate(policy)


@policies.delete("/{policy_id}", status_code=204, summary="Delete an escalation policy")
def delete_policy(principal: WriteIncidents, session: Db, policy_id: str) -> Response:
    escalation.delete_policy(session, policy_id=policy_id, actor=principal.actor, now=_now())
    session.commit()
    return Response(status_code=204)


# app.py includes one router per domain.
router = APIRouter()
router.include_router(incidents)
router.include_router(policies)
