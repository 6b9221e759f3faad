"""HTTP routes of the incidents domain (/v1/incidents and /v1/escalation-policies): translate
HTTP to service calls and back, nothing else.

Besides the route's permission, every incident is checked against the tenant's access rules with
its attributes (:func:`incident_resources`: severity, owner, and the tags of the alerts it
holds): an incident the caller may not read or change answers 403 (recording an
``access_denied`` event) and lists leave it out. The alerts shown in an incident, and those
added to one, are checked as alerts (``alerts:read``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.alerts.models import Alert
from vigil.alerts.schemas import AlertRead, CommentCreate
from vigil.alerts.views import alert_resource
from vigil.api.deps import (
    authorize_resource,
    get_runtime,
    require,
    tenant_db,
    visible,
    visible_page,
)
from vigil.identity.principal import Permission, Principal
from vigil.incidents import escalation, query, service
from vigil.incidents.config import SlaSettings
from vigil.incidents.models import Incident, IncidentAlert
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


def _resource(
    *, incident_id: str | None, tenant_id: str, severity: str, owner: str | None, tags: set[str]
) -> dict[str, Any]:
    return {
        "type": "incident",
        "id": incident_id,
        "tenant_id": tenant_id,
        "severity": severity,
        "tags": sorted(tags),
        "owner": owner,
    }


def incident_resources(session: Session, rows: Sequence[Incident]) -> list[dict[str, Any]]:
    """What access rules see of each incident (``tags``: those of the alerts it holds), with
    one query for all of them."""
    tags: dict[str, set[str]] = {r.id: set() for r in rows}
    if rows:
        held = session.execute(
            select(IncidentAlert.incident_id, Alert.tags)
            .join(Alert, Alert.id == IncidentAlert.alert_id)
            .where(IncidentAlert.incident_id.in_(list(tags)))
        ).all()
        for incident_id, alert_tags in held:
            tags[incident_id].update(alert_tags or [])
    return [
        _resource(
            incident_id=r.id,
            tenant_id=r.tenant_id,
            severity=r.severity,
            owner=r.owner,
            tags=tags[r.id],
        )
        for r in rows
    ]


def _checked(
    request: Request,
    principal: Principal,
    session: Session,
    incident_id: str,
    permission: str,
    *,
    lock: bool = False,
) -> Incident:
    """The incident (404 if none) once the caller passed ``permission`` on it (403 otherwise).
    ``lock``: FOR UPDATE, as the change that follows loads it (so it works on a fresh copy)."""
    incident = service.get_incident(session, incident_id=incident_id, for_update=lock)
    [resource] = incident_resources(session, [incident])
    authorize_resource(request, principal, permission, resource)
    return incident


def _alerts_readable(
    request: Request, principal: Principal, session: Session, alert_ids: Sequence[str]
) -> list[Alert]:
    """The alerts being added to an incident, each of which the caller must be allowed to read
    (unknown ids are left to the service, which names them in its 422)."""
    rows = (
        session.scalars(select(Alert).where(Alert.id.in_(list(alert_ids)))).all()
        if alert_ids
        else []
    )
    for alert in rows:
        authorize_resource(
            request,
            principal,
            Permission.ALERTS_READ,
            alert_resource(alert, tenant_id=alert.tenant_id),
        )
    return list(rows)


def _detail(
    request: Request, principal: Principal, session: Session, incident_id: str
) -> IncidentDetail:
    """The incident in full, without the alerts the caller may not read."""
    detail = query.incident_detail(session, incident_id=incident_id)
    tenant_id = principal.tenant_id  # the session is scoped to it

    def resources(items: Sequence[AlertRead]) -> list[dict[str, Any]]:
        return [alert_resource(a, tenant_id=tenant_id) for a in items]

    detail.alerts = visible(request, principal, Permission.ALERTS_READ, detail.alerts, resources)
    return detail


@incidents.get(
    "",
    summary="Incidents, filtered, sorted and paged with a cursor (incidents the access rules "
    "hide are left out; a page may then be short: follow next_cursor)",
)
def list_incidents(
    request: Request, principal: ReadIncidents, session: Db, q: Annotated[IncidentQuery, Query()]
) -> IncidentPage:
    def fetch(cursor: str | None, limit: int) -> tuple[Sequence[Incident], str | None]:
        return query.list_incidents(
            session, query=q.model_copy(update={"cursor": cursor, "limit": limit})
        )

    rows, next_cursor = visible_page(
        request,
        principal,
        Permission.INCIDENTS_READ,
        fetch=fetch,
        resources=lambda items: incident_resources(session, items),
        cursor=q.cursor,
        limit=q.limit,
    )
    return IncidentPage(
        items=[IncidentRead.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@incidents.post("", status_code=201, summary="Open an incident by hand (optionally with alerts)")
def create_incident(
    request: Request, principal: WriteIncidents, session: Db, body: IncidentCreate
) -> IncidentDetail:
    alerts = _alerts_readable(request, principal, session, body.alert_ids)
    lead = max(alerts, key=lambda a: a.severity_rank, default=None)
    severity = lead.severity if lead is not None else str(body.severity or "medium")
    resource = _resource(
        incident_id=None,
        tenant_id=principal.tenant_id,
        severity=severity,
        owner=body.owner,
        tags={tag for a in alerts for tag in a.tags or []},
    )
    authorize_resource(request, principal, Permission.INCIDENTS_WRITE, resource)
    incident = service.create_incident(
        session,
        tenant_id=principal.tenant_id,
        data=body,
        actor=principal.actor,
        now=_now(),
        sla=_sla(request),
    )
    session.commit()
    return _detail(request, principal, session, incident.id)


@incidents.get(
    "/{incident_id}",
    summary="One incident with its alerts (those the caller may read) and timeline",
)
def get_incident(
    request: Request, principal: ReadIncidents, session: Db, incident_id: str
) -> IncidentDetail:
    _checked(request, principal, session, incident_id, Permission.INCIDENTS_READ)
    return _detail(request, principal, session, incident_id)


@incidents.patch("/{incident_id}", summary="Change status, owner or post-incident fields")
def update_incident(
    request: Request, principal: WriteIncidents, session: Db, incident_id: str, body: IncidentUpdate
) -> IncidentRead:
    _checked(request, principal, session, incident_id, Permission.INCIDENTS_WRITE, lock=True)
    incident = service.update_incident(
        session, incident_id=incident_id, data=body, actor=principal.actor, now=_now()
    )
    session.commit()
    return IncidentRead.model_validate(incident)


@incidents.post("/{incident_id}/comments", status_code=201, summary="Comment on an incident")
def add_comment(
    request: Request, principal: WriteIncidents, session: Db, incident_id: str, body: CommentCreate
) -> TimelineEntryRead:
    _checked(request, principal, session, incident_id, Permission.INCIDENTS_WRITE)
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
    _checked(request, principal, session, incident_id, Permission.INCIDENTS_WRITE, lock=True)
    _alerts_readable(request, principal, session, body.alert_ids)
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
    _checked(request, principal, session, incident_id, Permission.INCIDENTS_WRITE, lock=True)
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
