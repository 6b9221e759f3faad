"""Pydantic shapes of the incidents API."""

from __future__ import annotations

import itertools
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from vigil.alerts.models import TITLE_MAX
from vigil.alerts.paging import SortOrder
from vigil.alerts.schemas import BULK_MAX, AlertId, AlertRead
from vigil.alerts.types import as_utc
from vigil.events.envelope import Severity
from vigil.incidents.models import OWNER_MAX, TEXT_MAX
from vigil.incidents.states import IncidentStatus

FOLLOW_UPS_MAX = 100


class FollowUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=1000)
    owner: str | None = Field(default=None, max_length=OWNER_MAX)
    due: datetime | None = None
    done: bool = False


class IncidentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    description: str | None
    severity: Severity = Field(description="The most severe alert's.")
    status: IncidentStatus
    owner: str | None
    entity: str
    correlation_id: str | None
    alert_count: int
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    last_alert_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    ack_due_at: datetime = Field(description="Time-to-acknowledge SLA deadline.")
    resolve_due_at: datetime = Field(description="Time-to-resolve SLA deadline.")
    ack_breached: bool
    resolve_breached: bool
    root_cause: str | None
    lessons_learned: str | None
    follow_ups: list[FollowUp]


class TimelineEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    kind: str
    actor: str
    summary: str
    data: dict[str, Any]


class IncidentDetail(IncidentRead):
    alerts: list[AlertRead]
    timeline: list[TimelineEntryRead]


class IncidentPage(BaseModel):
    items: list[IncidentRead]
    next_cursor: str | None


class IncidentSort(StrEnum):
    OPENED_AT = "opened_at"
    UPDATED_AT = "updated_at"
    SEVERITY = "severity"


def _check_ids(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))  # each once, in the order given


class IncidentCreate(BaseModel):
    """Open an incident by hand. With ``alert_ids`` the severity is the most severe alert's;
    without, ``severity`` is required."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    severity: Severity | None = None
    owner: str | None = Field(default=None, min_length=1, max_length=OWNER_MAX)
    alert_ids: list[AlertId] = Field(default_factory=list, max_length=BULK_MAX)
    move: bool = Field(
        default=False, description="Take alerts out of the incident they are in now."
    )

    _ids = field_validator("alert_ids")(_check_ids)


class IncidentAlertsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alert_ids: list[AlertId] = Field(min_length=1, max_length=BULK_MAX)
    move: bool = Field(
        default=False, description="Take alerts out of the incident they are in now."
    )

    _ids = field_validator("alert_ids")(_check_ids)


class IncidentUpdate(BaseModel):
    """``PATCH /v1/incidents/{id}``: any subset; ``owner: null`` clears the owner."""

    model_config = ConfigDict(extra="forbid")

    status: IncidentStatus | None = None
    owner: str | None = Field(default=None, min_length=1, max_length=OWNER_MAX)
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_MAX)
    description: str | None = Field(default=None, max_length=TEXT_MAX)
    root_cause: str | None = Field(default=None, max_length=TEXT_MAX)
    lessons_learned: str | None = Field(default=None, max_length=TEXT_MAX)
    follow_ups: list[FollowUp] | None = Field(default=None, max_length=FOLLOW_UPS_MAX)
    note: str | None = Field(default=None, min_length=1, max_length=TEXT_MAX)


class IncidentQuery(BaseModel):
    status: list[IncidentStatus] = Field(default_factory=list)
    severity: list[Severity] = Field(default_factory=list)
    min_severity: Severity | None = None
    owner: str | None = Field(default=None, max_length=OWNER_MAX)
    entity: str | None = Field(default=None, max_length=200)
    q: str | None = Field(default=None, max_length=200, description="Text in title or entity.")
    since: datetime | None = Field(default=None, description="Opened at or after.")
    until: datetime | None = Field(default=None, description="Opened at or before.")
    breached: bool | None = Field(
        default=None, description="Only incidents with (true) or without (false) an SLA breach."
    )
    sort: IncidentSort = IncidentSort.OPENED_AT
    order: SortOrder = SortOrder.DESC
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=2000)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None


# --- escalation policies --------------------------------------------------------------------

LEVELS_MAX = 10
CHANNELS_MAX = 20


class AppliesTo(StrEnum):
    ALERTS = "alerts"
    INCIDENTS = "incidents"
    BOTH = "both"


# 1 to 64 characters, not all blank (the pattern publishes what the validator checks).
ChannelId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"\S")]


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_minutes: float = Field(
        gt=0, le=60 * 24 * 30, description="Fire when not acknowledged this long after opening."
    )
    channels: list[ChannelId] = Field(
        min_length=1, max_length=CHANNELS_MAX, description="Notification channel ids to notify."
    )

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item) > 64:
                raise ValueError("channel ids are 1 to 64 characters")
        return list(dict.fromkeys(value))


def _check_levels(value: list[EscalationLevel]) -> list[EscalationLevel]:
    times = [level.after_minutes for level in value]
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ValueError("levels must be in strictly increasing after_minutes order")
    return value


class EscalationPolicyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    severity: Severity = Field(description="The policy applies to this severity (one per tenant).")
    applies_to: AppliesTo = Field(
        default=AppliesTo.BOTH,
        description="alerts, incidents, or both (then alerts inside an incident escalate "
        "through their incident only).",
    )
    enabled: bool = True
    levels: list[EscalationLevel] = Field(min_length=1, max_length=LEVELS_MAX)

    _levels = field_validator("levels")(_check_levels)


class EscalationPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Leave a field out to keep it; null is refused (the schema says so: no null in any type).
    name: Annotated[str, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = None
    severity: Severity | SkipJsonSchema[None] = None
    applies_to: AppliesTo | SkipJsonSchema[None] = None
    enabled: bool | SkipJsonSchema[None] = None
    levels: (
        Annotated[list[EscalationLevel], Field(min_length=1, max_length=LEVELS_MAX)]
        | SkipJsonSchema[None]
    ) = None

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[EscalationLevel] | None) -> list[EscalationLevel] | None:
        return _check_levels(value) if value is not None else None


class EscalationPolicyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    severity: Severity
    applies_to: AppliesTo
    enabled: bool
    levels: list[EscalationLevel]
    created_at: datetime
    updated_at: datetime
    updated_by: str


class EscalationStepRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    target_kind: str
    target_id: str
    level: int
    policy_id: str
    channels: list[str]
    due_at: datetime
    fired_at: datetime
