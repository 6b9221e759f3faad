"""What the alerts domain tells the rest of the platform: outbox events and alert summaries.

Every alert event carries ``metadata.correlation_id`` = the detection's correlation id when it
had one, otherwise the alert id, so a consumer can tie ``threat_detected`` and later
``alert_updated`` events of one alert together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vigil.alerts.models import Alert
from vigil.events.envelope import EventType, SecurityEvent, Severity, vigil_event


@dataclass(frozen=True, slots=True)
class AlertSummary:
    """An alert as other domains (incidents, escalation, notifications) see it."""

    id: str
    tenant_id: str
    rule_id: str
    title: str
    kind: str
    severity: Severity
    status: str
    entity: str
    entity_fields: dict[str, str]
    tags: tuple[str, ...]
    correlation_id: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    assignee: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Alert) -> AlertSummary:
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            rule_id=row.rule_id,
            title=row.title,
            kind=row.kind,
            severity=Severity(row.severity),
            status=row.status,
            entity=row.entity,
            entity_fields=dict(row.entity_fields),
            tags=tuple(row.tags),
            correlation_id=row.correlation_id,
            count=row.count,
            first_seen=row.first_seen,
            last_seen=row.last_seen,
            assignee=row.assignee,
        )

    @property
    def stream_correlation_id(self) -> str:
        return self.correlation_id or self.id

    def details(self) -> dict[str, Any]:
        """The alert part of every event's ``details``."""
        return {
            "alert_id": self.id,
            "rule_id": self.rule_id,
            "rule_title": self.title,
            "kind": self.kind,
            "severity": self.severity.value,
            "status": self.status,
            "entity": self.entity,
            "entity_fields": self.entity_fields,
            "tags": list(self.tags),
            "count": self.count,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "correlation_id": self.correlation_id,
            "assignee": self.assignee,
            **self.extra,
        }


def threat_detected(alert: AlertSummary) -> SecurityEvent:
    """A new alert was raised."""
    return vigil_event(
        tenant_id=alert.tenant_id,
        event_type=EventType.THREAT_DETECTED,
        severity=alert.severity,
        details=alert.details(),
        correlation_id=alert.stream_correlation_id,
    )


def alert_updated(alert: AlertSummary, *, actor: str, change: dict[str, Any]) -> SecurityEvent:
    """An alert changed (status, assignee, comment); ``change`` says what."""
    return vigil_event(
        tenant_id=alert.tenant_id,
        event_type=EventType.ALERT_UPDATED,
        severity=alert.severity,
        details={**alert.details(), "actor": actor, "change": change},
        correlation_id=alert.stream_correlation_id,
    )
