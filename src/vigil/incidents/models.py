"""Tables of the incidents domain.

* ``incidents``: one row per incident, with its SLA due times and breach flags and the
  post-incident fields. ``entity_key`` and ``correlation_id`` are what automatic grouping matches.
* ``incident_alerts``: which alerts an incident holds; an alert belongs to at most one incident
  (``alert_id`` is unique).
* ``incident_timeline``: everything that happened to an incident, in order (alerts added and
  removed, transitions, owner changes, comments, escalation steps, SLA breaches).
* ``escalation_policies``: per tenant and severity, ordered levels "if not acknowledged within N
  minutes, notify these channels".
* ``escalation_steps``: every level that fired, once per target: ``(target_kind, target_id,
  level)`` is unique, so two workers (or a crash and a replay) can never fire a step twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from vigil.alerts.models import ENTITY_MAX, TITLE_MAX, IdType
from vigil.alerts.types import UtcDateTime
from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped

OWNER_MAX = 200
TEXT_MAX = 20_000
KEY_MAX = 600


class Incident(TenantScoped, Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_tenant_entity_key", "tenant_id", "entity_key"),
        Index("ix_incidents_tenant_correlation_id", "tenant_id", "correlation_id"),
        Index("ix_incidents_tenant_opened_at", "tenant_id", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    severity_rank: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    owner: Mapped[str | None] = mapped_column(String(OWNER_MAX), nullable=True)
    entity: Mapped[str] = mapped_column(String(ENTITY_MAX), nullable=False)
    entity_key: Mapped[str | None] = mapped_column(String(KEY_MAX), nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    alert_count: Mapped[int] = mapped_column(Integer, nullable=False)
    opened_by: Mapped[str] = mapped_column(String(255), nullable=False)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_alert_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ack_due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    resolve_due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ack_breached: Mapped[bool] = mapped_column(Boolean, nullable=False)
    resolve_breached: Mapped[bool] = mapped_column(Boolean, nullable=False)
    root_cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    lessons_learned: Mapped[str | None] = mapped_column(Text, nullable=True)
    follow_ups: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)


@dataclass(slots=True)
class IncidentDraft:
    """A new incident as automatic grouping builds it: the ``incidents`` columns in a plain
    object, written with one bulk insert. Building hundreds of mapped :class:`Incident` objects
    per detection batch (attribute instrumentation, identity bookkeeping) cost more than
    deciding the grouping itself."""

    id: str
    tenant_id: str
    title: str
    description: str | None
    severity: str
    severity_rank: int
    status: str
    owner: str | None
    entity: str
    entity_key: str | None
    correlation_id: str | None
    alert_count: int
    opened_by: str
    opened_at: datetime
    updated_at: datetime
    last_alert_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    ack_due_at: datetime
    resolve_due_at: datetime
    ack_breached: bool
    resolve_breached: bool
    root_cause: str | None
    lessons_learned: str | None
    follow_ups: list[dict[str, Any]]

    def row(self) -> dict[str, Any]:
        """The insert row (every column of ``incidents``)."""
        return {name: getattr(self, name) for name in self.__slots__}


#: What the grouping, SLA and event helpers accept: a mapped row or a draft.
IncidentLike: TypeAlias = Incident | IncidentDraft


class IncidentAlert(TenantScoped, Base):
    __tablename__ = "incident_alerts"
    __table_args__ = (UniqueConstraint("alert_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    alert_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False
    )
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    added_by: Mapped[str] = mapped_column(String(255), nullable=False)


class IncidentTimelineEntry(TenantScoped, Base):
    __tablename__ = "incident_timeline"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False, index=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    summary: Mapped[str] = mapped_column(String(1000), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


class EscalationPolicy(TenantScoped, Base):
    __tablename__ = "escalation_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "severity"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    applies_to: Mapped[str] = mapped_column(String(16), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    levels: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_by: Mapped[str] = mapped_column(String(255), nullable=False)


class EscalationStep(TenantScoped, Base):
    __tablename__ = "escalation_steps"
    __table_args__ = (UniqueConstraint("target_kind", "target_id", "level"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    target_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    target_id: Mapped[str] = mapped_column(String(36), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False)
    policy_id: Mapped[str] = mapped_column(String(36), nullable=False)
    channels: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    fired_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
