"""The security event envelope, in and out (the platform's original design).

Ingest accepts records in this shape; Vigil emits its own events in it too (an alert raised is a
``threat_detected`` event) on the internal stream (:mod:`vigil.bus.outbox`) and to notification
channels.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def from_level(cls, level: str | None) -> Severity:
        """Sigma rule level → severity (``informational`` → ``info``)."""
        if not level:
            return cls.INFO
        text = level.strip().lower()
        if text == "informational":
            return cls.INFO
        try:
            return cls(text)
        except ValueError:
            return cls.INFO


_SEVERITY_RANK = {
    Severity.INFO: 0,
    Severity.LOW: 1,
    Severity.MEDIUM: 2,
    Severity.HIGH: 3,
    Severity.CRITICAL: 4,
}


class EventType(StrEnum):
    """Known event types; the envelope accepts any other lower_snake_case name too."""

    THREAT_DETECTED = "threat_detected"
    VULNERABILITY_FOUND = "vulnerability_found"
    COMPLIANCE_VIOLATION = "compliance_violation"
    ACCESS_DENIED = "access_denied"
    ALERT_UPDATED = "alert_updated"
    INCIDENT_OPENED = "incident_opened"
    INCIDENT_UPDATED = "incident_updated"
    ESCALATION = "escalation"


class EventSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service: str = Field(min_length=1, max_length=200)
    instance: str | None = Field(default=None, max_length=200)
    region: str | None = Field(default=None, max_length=100)


class EventMetadata(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = Field(default=None, max_length=64)
    correlation_id: str | None = Field(default=None, max_length=200)
    trace_id: str | None = Field(default=None, max_length=200)


class SecurityEvent(BaseModel):
    """One security event in the envelope form."""

    model_config = ConfigDict(extra="forbid")

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    source: EventSource
    event_type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    severity: Severity
    details: dict[str, Any] = Field(default_factory=dict)
    metadata: EventMetadata = Field(default_factory=EventMetadata)

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


ENVELOPE_KEYS = frozenset({"event_id", "timestamp", "source", "event_type", "severity"})


def looks_like_envelope(record: dict[str, Any]) -> bool:
    """A record is treated as an envelope when it carries the envelope's required keys."""
    return "event_type" in record and "source" in record and "severity" in record


def vigil_event(
    *,
    tenant_id: str,
    event_type: str,
    severity: Severity,
    details: dict[str, Any],
    correlation_id: str | None = None,
    instance: str | None = None,
) -> SecurityEvent:
    """An event Vigil itself emits."""
    return SecurityEvent(
        source=EventSource(service="vigil", instance=instance),
        event_type=event_type,
        severity=severity,
        details=details,
        metadata=EventMetadata(tenant_id=tenant_id, correlation_id=correlation_id),
    )
