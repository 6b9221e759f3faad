"""Tables of the bus: the internal security-event stream (outbox) and consumer offsets.

The event queue of ingest lives in :mod:`vigil.bus.queue_models`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base

SeqType = BigInteger().with_variant(Integer(), "sqlite")


class OutboxEvent(Base):
    """Security events Vigil emitted, in order; notifiers and exporters read them by ``seq``."""

    __tablename__ = "outbox_events"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), nullable=False, unique=True)
    tenant_id: Mapped[str] = mapped_column(String(36), nullable=False, index=True)
    event_type: Mapped[str] = mapped_column(String(64), nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class ConsumerOffset(Base):
    """How far a named consumer got in a sequence (queue or outbox), committed with its work."""

    __tablename__ = "consumer_offsets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Lease(Base):
    """A named, expiring claim held by one process (:mod:`vigil.bus.leases`): correlation
    partitions, correlator membership, the notification dispatcher's leadership.

    ``epoch`` grows by one at every change of holder, so a holder that was frozen past its
    expiry finds its epoch gone when it next writes (a fencing token)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    epoch: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
