"""Outbox events of the incidents domain (``incident_opened``, ``incident_updated``,
``escalation``).

``metadata.correlation_id`` is the incident id for incident events, so a consumer can thread an
incident's events; escalation events carry the target's own correlation id.
"""

from __future__ import annotations

from typing import Any

from vigil.events.envelope import EventType, SecurityEvent, Severity, vigil_event
from vigil.incidents.models import IncidentLike


def incident_details(incident: IncidentLike) -> dict[str, Any]:
    return {
        "incident_id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "owner": incident.owner,
        "entity": incident.entity,
        "correlation_id": incident.correlation_id,
        "alert_count": incident.alert_count,
        "opened_at": incident.opened_at.isoformat(),
        "acknowledged_at": _iso(incident.acknowledged_at),
        "resolved_at": _iso(incident.resolved_at),
        "ack_due_at": incident.ack_due_at.isoformat(),
        "resolve_due_at": incident.resolve_due_at.isoformat(),
        "ack_breached": incident.ack_breached,
        "resolve_breached": incident.resolve_breached,
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def incident_opened(incident: IncidentLike, *, alert_ids: list[str], actor: str) -> SecurityEvent:
    return vigil_event(
        tenant_id=incident.tenant_id,
        event_type=EventType.INCIDENT_OPENED,
        severity=Severity(incident.severity),
        details={**incident_details(incident), "alert_ids": alert_ids, "actor": actor},
        correlation_id=incident.id,
    )


def incident_updated(
    incident: IncidentLike, *, actor: str, change: dict[str, Any]
) -> SecurityEvent:
    return vigil_event(
        tenant_id=incident.tenant_id,
        event_type=EventType.INCIDENT_UPDATED,
        severity=Severity(incident.severity),
        details={**incident_details(incident), "actor": actor, "change": change},
        correlation_id=incident.id,
    )


def escalation(
    *,
    tenant_id: str,
    severity: Severity,
    target_kind: str,
    target: dict[str, Any],
    level: int,
    levels: int,
    channels: list[str],
    policy_id: str,
    minutes: float,
    correlation_id: str,
) -> SecurityEvent:
    """A due escalation level: the notifier delivers it to exactly ``channels``."""
    return vigil_event(
        tenant_id=tenant_id,
        event_type=EventType.ESCALATION,
        severity=severity,
        details={
            "target_kind": target_kind,
            "level": level,
            "levels": levels,
            "channels": channels,
            "policy_id": policy_id,
            "unacknowledged_minutes": minutes,
            target_kind: target,
        },
        correlation_id=correlation_id,
    )
