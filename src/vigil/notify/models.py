"""Tables of the notify domain.

* ``notification_channels``: where notifications go (webhook, email, Slack-compatible). Public
  configuration is JSON; secrets (signing secret, SMTP password, Slack URL, custom headers) are
  one encrypted blob (:mod:`vigil.notify.secretbox`). The per-channel circuit breaker lives on the
  row so every worker process sees the same state.
* ``notification_routes`` + ``notification_route_channels``: which events go to which channels.
* ``notification_deliveries``: one row per (event, channel), unique, so a replayed outbox never
  sends twice; it carries the exact envelope bytes so a dead letter can be retried later.
* ``notification_attempts``: the delivery log, one row per attempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped

SeqType = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # SQLite stores the text without an offset: normalise so comparisons are in UTC.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ChannelType(StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"
    SLACK = "slack"


class CircuitState(StrEnum):
    CLOSED = "closed"  # sending normally
    OPEN = "open"  # failing: deliveries wait until ``circuit_retry_at``
    HALF_OPEN = "half_open"  # one probe delivery in flight


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # waiting for its next attempt (``next_attempt_at``)
    SENDING = "sending"  # claimed by a sender until ``lease_until``
    DELIVERED = "delivered"
    DEAD = "dead"  # attempts used up or rejected permanently: in the dead-letter list
    FAILED = "failed"  # a test send that failed (tests are never retried)
    CANCELLED = "cancelled"  # its channel was deleted


class DeliveryKind(StrEnum):
    ROUTE = "route"  # picked by routing rules
    ESCALATION = "escalation"  # named by an escalation event's details.channels
    TEST = "test"  # POST /channels/{id}/test


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # transient: retried
    REJECTED = "rejected"  # permanent (4xx, refused address, bad config): dead-lettered at once


class NotificationChannel(TenantScoped, Base):
    __tablename__ = "notification_channels"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    secrets: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    secrets_set: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    circuit_state: Mapped[str] = mapped_column(
        String(16), nullable=False, default=CircuitState.CLOSED.value
    )
    circuit_failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    circuit_opened_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    circuit_retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_notification_channels_tenant_name"),
    )


class NotificationRoute(TenantScoped, Base):
    __tablename__ = "notification_routes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    min_severity: Mapped[str | None] = mapped_column(String(16), nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    event_types: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_notification_routes_tenant_name"),
    )


class NotificationRouteChannel(Base):
    """A route's target channel; goes away with either side."""

    __tablename__ = "notification_route_channels"

    route_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("notification_routes.id", ondelete="CASCADE"), primary_key=True
    )
    channel_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("notification_channels.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )


class NotificationDelivery(TenantScoped, Base):
    __tablename__ = "notification_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False)
    # No foreign key: the log outlives a deleted channel (its deliveries become "cancelled").
    channel_id: Mapped[str] = mapped_column(String(36), nullable=False)
    channel_type: Mapped[str] = mapped_column(String(16), nullable=False)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    #: Every attempt ever made; ``round_attempts`` counts since creation or the last manual retry.
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    round_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("event_id", "channel_id", name="uq_notification_deliveries_event_channel"),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_notification_deliveries_channel_status", "channel_id", "status"),
    )


class NotificationAttempt(TenantScoped, Base):
    __tablename__ = "notification_attempts"

    id: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(
        String(36),
        ForeignKey("notification_deliveries.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    number: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    duration_ms: Mapped[float] = mapped_column(Float, nullable=False)
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reply: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
