"""The internal stream of security events Vigil emits (transactional outbox).

Producers call :func:`emit` inside the transaction that changes state (raising an alert, say), so
an event exists exactly when its change was committed. Consumers read in ``seq`` order after their
committed offset (:mod:`vigil.bus.offsets`).

Readers skip nothing only if rows become visible in ``seq`` order. SQLite serialises writers, so
that holds by construction; on PostgreSQL a transaction that drew a lower ``seq`` could commit
after one with a higher ``seq`` was already read, and every consumer would pass it by. Emitters
therefore take a transaction-scoped advisory lock before drawing sequence numbers: the next
emitter waits until the previous one committed (or rolled back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from vigil.bus.models import OutboxEvent
from vigil.events.envelope import SecurityEvent
from vigil.store.bulk import insert_rows

#: PostgreSQL advisory lock ordering outbox emitters ("vigilo" in hex).
PG_OUTBOX_LOCK = 0x76696769_6C6F


@dataclass(frozen=True, slots=True)
class StreamItem:
    seq: int
    tenant_id: str
    event: SecurityEvent


def emit(session: Session, *, tenant_id: str, event: SecurityEvent) -> None:
    """Append ``event`` to the stream in the caller's transaction."""
    emit_many(session, tenant_id=tenant_id, events=[event])


def emit_many(session: Session, *, tenant_id: str, events: Sequence[SecurityEvent]) -> None:
    if not events:
        return
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_OUTBOX_LOCK})
    now = datetime.now(UTC)
    rows = []
    for ev in events:
        if ev.metadata.tenant_id is None:
            ev.metadata.tenant_id = tenant_id
        rows.append(
            {
                "event_id": str(ev.event_id),
                "tenant_id": tenant_id,
                "event_type": ev.event_type,
                "severity": ev.severity.value,
                "created_at": now,
                # pydantic's own JSON encoder: the same bytes as orjson over model_dump(mode=
                # "json"), without building the intermediate dict
                "body": ev.model_dump_json().encode(),
            }
        )
    insert_rows(session, OutboxEvent, rows)


def read_after(session: Session, *, after_seq: int, limit: int = 500) -> list[StreamItem]:
    rows = session.execute(
        select(OutboxEvent.seq, OutboxEvent.tenant_id, OutboxEvent.body)
        .where(OutboxEvent.seq > after_seq)
        .order_by(OutboxEvent.seq)
        .limit(limit)
    ).all()
    return [
        StreamItem(seq=seq, tenant_id=tenant, event=SecurityEvent.model_validate_json(body))
        for seq, tenant, body in rows
    ]


def last_seq(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(OutboxEvent.seq), 0))).scalar_one())
