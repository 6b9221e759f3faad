"""Pydantic shapes of the alerts API."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vigil.alerts.models import ASSIGNEE_MAX, COMMENT_MAX, NOTE_MAX
from vigil.alerts.paging import SortOrder
from vigil.alerts.states import AlertStatus
from vigil.alerts.types import as_utc
from vigil.events.envelope import Severity

BULK_MAX = 500

#: An alert id as requests name it (declared, so the OpenAPI document says what is accepted).
AlertId = Annotated[str, Field(min_length=1, max_length=64)]


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    rule_id: str
    title: str
    kind: str
    severity: Severity
    status: AlertStatus
    entity: str = Field(description="host=… user=…, or the correlation's group-by fields.")
    entity_fields: dict[str, str]
    tags: list[str]
    correlation_id: str | None
    count: int = Field(description="Detections folded into this alert.")
    first_seen: datetime
    last_seen: datetime
    assignee: str | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    incident_id: str | None = Field(default=None, description="The incident holding it, if any.")


class TransitionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str = Field(description="status, assignee or escalation")
    from_value: str | None
    to_value: str | None
    actor: str
    note: str | None
    at: datetime


class CommentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    author: str
    body: str
    created_at: datetime


class DetectionLinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    detection_id: str
    event_ids: list[str]
    seen_at: datetime
    recorded_at: datetime


class AlertDetail(AlertRead):
    context: dict[str, Any] = Field(description="Fields of the first matching event (bounded).")
    event_ids: list[str] = Field(description="Ids of the matched events (most recent first).")
    detections: list[DetectionLinkRead] = Field(description="The most recent detections.")
    transitions: list[TransitionRead]
    comments: list[CommentRead]


class AlertPage(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page, if any.")


class AlertSort(StrEnum):
    LAST_SEEN = "last_seen"
    FIRST_SEEN = "first_seen"
    SEVERITY = "severity"
    COUNT = "count"


class AlertQuery(BaseModel):
    """Filters of ``GET /v1/alerts``; repeated ``status``/``severity`` mean "any of"."""

    status: list[AlertStatus] = Field(default_factory=list)
    severity: list[Severity] = Field(default_factory=list)
    min_severity: Severity | None = Field(default=None, description="This severity or above.")
    rule_id: str | None = Field(default=None, max_length=200)
    entity: str | None = Field(
        default=None, max_length=200, description="Substring of the entity, any case."
    )
    assignee: str | None = Field(default=None, max_length=ASSIGNEE_MAX)
    since: datetime | None = Field(default=None, description="Alerts last seen at or after.")
    until: datetime | None = Field(default=None, description="Alerts first seen at or before.")
    q: str | None = Field(
        default=None, max_length=200, description="Text in the title, entity or rule id."
    )
    sort: AlertSort = AlertSort.LAST_SEEN
    order: SortOrder = SortOrder.DESC
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = Field(default=None, max_length=2000)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None


class AlertUpdate(BaseModel):
    """``PATCH /v1/alerts/{id}``: any of status and assignee (``null`` unassigns); ``note`` is
    kept with the change (or as a comment when nothing else changes)."""

    model_config = ConfigDict(extra="forbid")

    status: AlertStatus | None = None
    assignee: str | None = Field(default=None, min_length=1, max_length=ASSIGNEE_MAX)
    note: str | None = Field(default=None, min_length=1, max_length=NOTE_MAX)


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=COMMENT_MAX)

    @field_validator("body")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the comment is blank")
        return value


class BulkAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    START = "start"
    """→ in_progress"""
    RESOLVE = "resolve"
    FALSE_POSITIVE = "false_positive"
    REOPEN = "reopen"
    """→ ``reopen_to`` (new by default)"""
    ASSIGN = "assign"
    UNASSIGN = "unassign"
    COMMENT = "comment"


def _needs(action: BulkAction, field: str) -> dict[str, Any]:
    """JSON Schema: ``action: <action>`` requires ``field`` as a string."""
    return {
        "if": {"properties": {"action": {"const": action.value}}, "required": ["action"]},
        "then": {"properties": {field: {"type": "string"}}, "required": [field]},
    }


class AlertBulkRequest(BaseModel):
    # The service refuses assign without an assignee and comment without a note: say so.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "allOf": [_needs(BulkAction.ASSIGN, "assignee"), _needs(BulkAction.COMMENT, "note")]
        },
    )

    ids: list[AlertId] = Field(min_length=1, max_length=BULK_MAX)
    action: BulkAction
    assignee: str | None = Field(default=None, min_length=1, max_length=ASSIGNEE_MAX)
    note: str | None = Field(
        default=None,
        min_length=1,
        max_length=COMMENT_MAX,
        description="Kept with each change; the comment text for `comment`.",
    )
    reopen_to: Literal[AlertStatus.NEW, AlertStatus.IN_PROGRESS] = AlertStatus.NEW

    @field_validator("ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # each once, in the order given


class BulkOutcome(StrEnum):
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    NOT_FOUND = "not_found"
    INVALID_TRANSITION = "invalid_transition"
    FORBIDDEN = "forbidden"
    """The tenant's access rules deny this change on this alert."""


class BulkItemResult(BaseModel):
    id: str
    ok: bool
    outcome: BulkOutcome
    status: AlertStatus | None = Field(description="The alert's status afterwards.")
    error: str | None = None


class BulkResult(BaseModel):
    succeeded: int
    failed: int
    results: list[BulkItemResult]
