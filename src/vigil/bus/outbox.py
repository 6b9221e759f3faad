"""The internal stream of security events Vigil emits (transactional outbox).

Producers call :func:`emit` inside the transaction that changes state (raising an alert, say), so
an event exists exactly when its change was committed. Consumers read in ``seq`` order after their
committed offset (:mod:`vigil.bus.offsets`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from vigil.bus.models import OutboxEvent
from vigil.events.envelope import SecurityEvent


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
                "body": orjson.dumps(ev.to_json_dict()),
            }
        )
    session.execute(insert(OutboxEvent), rows)


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
