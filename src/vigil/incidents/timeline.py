"""The incident timeline: one row per thing that happened to an incident, in order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from vigil.alerts.types import insert_rows
from vigil.incidents.models import IncidentTimelineEntry

SUMMARY_MAX = 1000


class TimelineKind(StrEnum):
    OPENED = "opened"
    ALERT_ADDED = "alert_added"
    ALERT_REMOVED = "alert_removed"
    SEVERITY = "severity"
    STATUS = "status"
    OWNER = "owner"
    UPDATED = "updated"
    COMMENT = "comment"
    ESCALATION = "escalation"
    SLA_BREACH = "sla_breach"


@dataclass(frozen=True, slots=True)
class TimelineItem:
    incident_id: str
    tenant_id: str
    kind: TimelineKind
    actor: str
    summary: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "tenant_id": self.tenant_id,
            "kind": self.kind.value,
            "actor": self.actor,
            "summary": self.summary[:SUMMARY_MAX],
            "at": self.at,
            "data": self.data,
        }


def record(session: Session, items: Sequence[TimelineItem]) -> None:
    """Append ``items`` to their incidents' timelines (one bulk insert)."""
    insert_rows(session, IncidentTimelineEntry, [item.row() for item in items])
