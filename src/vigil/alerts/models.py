"""Tables of the alerts domain.

* ``alerts``: one row per alert. ``fingerprint`` (tenant + rule + entity, hashed) is what repeated
  detections fold into while the alert is open and inside its suppression window.
* ``alert_detections``: every detection recorded into an alert, with the queue ids of the events
  that made it. ``(detection_id, tenant_id)`` is unique: that is what makes recording
  idempotent, even across crashes and replays of the pipeline.
* ``alert_transitions``: who changed what and when (status, assignee, escalation steps).
* ``alert_comments``: analysts' notes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vigil.alerts.types import UtcDateTime
from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped

IdType = BigInteger().with_variant(Integer(), "sqlite")

ENTITY_MAX = 512
TITLE_MAX = 500
ASSIGNEE_MAX = 200
NOTE_MAX = 4000
COMMENT_MAX = 10_000


class Alert(TenantScoped, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_tenant_last_seen", "tenant_id", "last_seen"),
        Index("ix_alerts_tenant_status", "tenant_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    rule_id: Mapped[str] = mapped_column(String(200), nullable=False)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    severity_rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    entity: Mapped[str] = mapped_column(String(ENTITY_MAX), nullable=False)
    """Display form of the entity (``host=WS01 user=alice``); empty when none was found."""
    entity_fields: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    """The first detection's event fields, bounded in size."""
    correlation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    count: Mapped[int] = mapped_column(Integer, nullable=False)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    assignee: Mapped[str | None] = mapped_column(String(ASSIGNEE_MAX), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AlertDetection(TenantScoped, Base):
    __tablename__ = "alert_detections"
    __table_args__ = (UniqueConstraint("detection_id", "tenant_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    detection_id: Mapped[str] = mapped_column(String(200), nullable=False)
    event_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class AlertTransition(TenantScoped, Base):
    __tablename__ = "alert_transitions"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    """``status``, ``assignee`` or ``escalation``."""
    from_value: Mapped[str | None] = mapped_column(String(ASSIGNEE_MAX), nullable=True)
    to_value: Mapped[str | None] = mapped_column(String(ASSIGNEE_MAX), nullable=True)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class AlertComment(TenantScoped, Base):
    __tablename__ = "alert_comments"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    author: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
