"""Tables of the pipeline domain: detections and per-tenant rule settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped

RULE_ID_MAX = 200


class Detection(TenantScoped, Base):
    """One rule (or correlation) match. ``detection_id`` is the idempotency key: a hash of
    (tenant, rule, event) — or (tenant, correlation, group, window) — so a redelivered queue
    record can never make a second detection."""

    __tablename__ = "detections"
    __table_args__ = (Index("ix_detections_tenant_detected", "tenant_id", "detected_at"),)

    detection_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(RULE_ID_MAX), nullable=False)
    rule_title: Mapped[str] = mapped_column(String(500), nullable=False)
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    event_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_ids: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    event_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class RuleSetting(TenantScoped, Base):
    """A tenant's override of one rule: enabled, level, alert suppression window."""

    __tablename__ = "rule_settings"
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "rule_id"),)

    rule_id: Mapped[str] = mapped_column(String(RULE_ID_MAX), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    suppression_window_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(200), nullable=False)
