"""Tables of the durable ingest queue.

``event_queue`` holds every accepted record in acceptance order (``seq``). ``seq`` is an
AUTOINCREMENT key on SQLite on purpose: without it SQLite may hand out the rowid of a purged
last row again, and a consumer whose offset already passed that number would skip the new row.
``(tenant_id, event_id)`` is unique, which is what makes ingest idempotent: NULL event ids are
distinct on both backends, so records without an id never collide.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base

SeqType = BigInteger().with_variant(Integer(), "sqlite")

#: Longest ``event_id`` a record may carry (envelope ids are UUIDs; flat logs bring their own).
EVENT_ID_MAX = 128


class QueuedEventRow(Base):
    """One accepted record, stored as the bytes it arrived as (decoded again by the consumer)."""

    __tablename__ = "event_queue"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id"),
        Index("ix_event_queue_accepted_at", "accepted_at"),
        {"sqlite_autoincrement": True},
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), nullable=False)
    event_id: Mapped[str | None] = mapped_column(String(EVENT_ID_MAX), nullable=True)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
