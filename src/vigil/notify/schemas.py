"""API shapes of the notify domain (Pydantic v2).

Channel secrets are write-only: they appear in ``...Create``/``...Update`` under ``secrets`` and
never in a ``...Read`` (which lists only the names of the secrets that are set). A webhook's
generated signing secret is returned once, in the creation (or rotation) answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from vigil.events.envelope import Severity
from vigil.notify.channels.email import EmailConfig, EmailSecretsInput
from vigil.notify.channels.slack import SlackConfig, SlackSecretsInput
from vigil.notify.channels.webhook import SigningSecret, WebhookConfig, WebhookSecretsInput
from vigil.notify.models import (
    AttemptOutcome,
    ChannelType,
    CircuitState,
    DeliveryKind,
    DeliveryStatus,
)

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
EventTypeName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Id = Annotated[str, StringConstraints(min_length=1, max_length=36)]

MAX_GRACE_S = 7 * 24 * 3600


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- channels -------------------------------------------------------------------------------------


class _ChannelCreateBase(_Strict):
    name: Name
    description: Description | None = None
    enabled: bool = True


class WebhookChannelCreate(_ChannelCreateBase):
    type: Literal[ChannelType.WEBHOOK]
    config: WebhookConfig
    secrets: WebhookSecretsInput = Field(default_factory=WebhookSecretsInput)


class EmailChannelCreate(_ChannelCreateBase):
    type: Literal[ChannelType.EMAIL]
    config: EmailConfig
    secrets: EmailSecretsInput = Field(default_factory=EmailSecretsInput)


class SlackChannelCreate(_ChannelCreateBase):
    type: Literal[ChannelType.SLACK]
    config: SlackConfig = Field(default_factory=SlackConfig)
    secrets: SlackSecretsInput


ChannelCreate = Annotated[
    WebhookChannelCreate | EmailChannelCreate | SlackChannelCreate, Field(discriminator="type")
]


class ChannelUpdate(_Strict):
    """Fields left out stay as they are. ``config`` replaces the whole public config (validated
    for the channel's type); ``secrets`` replaces the secrets it names (a webhook's signing
    secret changes only through rotation)."""

    name: Name | None = None
    description: Description | None = None
    enabled: bool | None = None
    config: dict[str, Any] | None = None
    secrets: dict[str, Any] | None = None


class CircuitRead(BaseModel):
    state: CircuitState
    consecutive_failures: int
    opened_at: datetime | None
    retry_at: datetime | None


class ChannelRead(BaseModel):
    id: str
    name: str
    type: ChannelType
    enabled: bool
    description: str | None
    config: dict[str, Any]
    secrets_set: list[str] = Field(description="Names of the write-only secrets that are set.")
    secret_rotated_at: datetime | None
    circuit: CircuitRead
    created_by: str
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelRead):
    signing_secret: str | None = Field(
        default=None,
        description="The generated webhook signing secret. Shown only in this answer.",
    )


class ChannelList(BaseModel):
    items: list[ChannelRead]


class SecretRotate(_Strict):
    signing_secret: SigningSecret | None = Field(
        default=None, description="The new secret; generated when omitted."
    )
    grace_s: int = Field(
        default=0,
        ge=0,
        le=MAX_GRACE_S,
        description="Keep signing with the old secret too for this many seconds.",
    )


class SecretRotated(BaseModel):
    signing_secret: str | None = Field(
        description="The generated secret (null when you supplied it). Shown only here."
    )
    previous_valid_until: datetime | None


# --- routes ---------------------------------------------------------------------------------------


class RouteCreate(_Strict):
    name: Name
    description: Description | None = None
    enabled: bool = True
    min_severity: Severity | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    event_types: list[EventTypeName] = Field(default_factory=list, max_length=50)
    channel_ids: list[Id] = Field(min_length=1, max_length=50)


class RouteUpdate(_Strict):
    name: Name | None = None
    description: Description | None = None
    enabled: bool | None = None
    min_severity: Severity | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    event_types: list[EventTypeName] | None = Field(default=None, max_length=50)
    channel_ids: list[Id] | None = Field(default=None, min_length=1, max_length=50)


class RouteRead(BaseModel):
    id: str
    name: str
    description: str | None
    enabled: bool
    min_severity: Severity | None
    tags: list[str]
    event_types: list[str]
    channel_ids: list[str]
    created_by: str
    created_at: datetime
    updated_at: datetime


class RouteList(BaseModel):
    items: list[RouteRead]


# --- deliveries -----------------------------------------------------------------------------------


class AttemptRead(BaseModel):
    number: int
    started_at: datetime
    duration_ms: float
    outcome: AttemptOutcome
    status_code: int | None = Field(description="HTTP status or SMTP reply code.")
    reply: str | None = Field(description="The receiver's answer (excerpt) or SMTP reply.")
    error: str | None
    retry_at: datetime | None


class DeliveryRead(BaseModel):
    id: str
    event_id: str
    channel_id: str
    channel_type: ChannelType
    event_type: str
    severity: Severity
    kind: DeliveryKind
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_outcome: AttemptOutcome | None
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    attempt_log: list[AttemptRead]


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class DeadLetterRetry(_Strict):
    """Pick dead letters by ``ids``, by ``channel_id``, or ``all``: exactly one of them."""

    # The published schema says "exactly one" too (null and false choose nothing).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["ids"], "properties": {"ids": {"type": "array"}}},
                {"required": ["channel_id"], "properties": {"channel_id": {"type": "string"}}},
                {"required": ["all"], "properties": {"all": {"const": True}}},
            ]
        },
    )

    ids: list[Id] | None = Field(default=None, min_length=1, max_length=1000)
    channel_id: Id | None = None
    all: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> DeadLetterRetry:
        chosen = sum([self.ids is not None, self.channel_id is not None, self.all])
        if chosen != 1:
            raise ValueError("give exactly one of ids, channel_id or all=true")
        return self


class RetryResult(BaseModel):
    retried: int
    ids: list[str]
