"""Tables of the pipeline domain: detections, per-tenant rule settings and correlation state.

``correlation_inputs`` and ``correlation_state`` carry Sigma correlations across processes and
restarts (see :mod:`vigil.pipeline.correlator`): detection workers append one input per base-rule
match that a correlation needs, in the transaction of their detections; the correlator of each
partition reads them in ``seq`` order and keeps its progress and engine snapshot in
``correlation_state``. ``seq`` is AUTOINCREMENT on SQLite for the reason given in
:mod:`vigil.bus.queue_models` (a pruned last row's number must never be handed out again).
"""

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
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    UniqueConstraint,
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


SeqType = BigInteger().with_variant(Integer(), "sqlite")


class CorrelationInput(Base):
    """One base-rule match fed to one correlation family in one partition.

    ``input_id`` is the match's detection id, so a redelivered queue batch adds nothing
    (unique with ``family``). ``body`` (orjson) holds the rule, the event time, the event key,
    ``accepted_at`` and only the fields the correlations read (group-by, value fields) plus the
    host/user fields and correlation id that alerts use as entity and context.
    """

    __tablename__ = "correlation_inputs"
    __table_args__ = (
        UniqueConstraint("input_id", "family"),
        Index("ix_correlation_inputs_partition_seq", "partition_no", "seq"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    partition_no: Mapped[int] = mapped_column(Integer, nullable=False)
    family: Mapped[str] = mapped_column(String(32), nullable=False)
    input_id: Mapped[str] = mapped_column(String(64), nullable=False)
    tenant_id: Mapped[str] = mapped_column(String(36), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class CorrelationState(Base):
    """A partition's progress (``position``, moved with its detections) and its last engine
    snapshot (``snapshot`` taken after input ``snapshot_position``), one row per partition."""

    __tablename__ = "correlation_state"

    partition_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    #: the partition count the snapshot was made under (another count regroups the state)
    partitions: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    snapshot_position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    snapshot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: the process that last wrote the row (host-pid), for operators
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
