"""The in-memory test double of :class:`vigil.bus.queue.EventQueue`: the semantics of the SQL
queue (idempotent publish, ``seq`` order, offsets that move when the consumer's session
commits, purge behind every consumer) without a database."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from vigil.bus.queue import (
    PublishResult,
    QueuedEvent,
    QueueRecord,
    QueueStats,
    _Listeners,
    dedupe_batch,
)


@dataclass
class _MemoryState:
    rows: list[QueuedEvent] = field(default_factory=list)
    ids: set[tuple[str, str]] = field(default_factory=set)
    offsets: dict[str, int] = field(default_factory=dict)
    next_seq: int = 1


class MemoryEventQueue(_Listeners):
    """The test double: same semantics, held in memory. ``ack`` takes effect when the
    consumer's session commits and is dropped when it rolls back."""

    def __init__(self) -> None:
        super().__init__()
        self._state = _MemoryState()
        self._lock = threading.Lock()

    def publish(self, tenant_id: str, records: Sequence[QueueRecord]) -> PublishResult:
        keep, repeats = dedupe_batch(records)
        now = datetime.now(UTC)
        dups = list(repeats)
        accepted = 0
        with self._lock:
            st = self._state
            for i in keep:
                rec = records[i]
                if rec.event_id is not None:
                    key = (tenant_id, rec.event_id)
                    if key in st.ids:
                        dups.append(i)
                        continue
                    st.ids.add(key)
                st.rows.append(QueuedEvent(st.next_seq, tenant_id, rec.event_id, now, rec.payload))
                st.next_seq += 1
                accepted += 1
        if accepted:
            self._notify()
        return PublishResult(accepted, len(records) - accepted, tuple(sorted(dups)))

    def read(self, session: Session, *, consumer: str, limit: int) -> list[QueuedEvent]:
        with self._lock:
            position = self._state.offsets.get(consumer, 0)
            return [r for r in self._state.rows if r.seq > position][:limit]

    def ack(self, session: Session, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        if not batch:
            return
        from sqlalchemy import event

        position = batch[-1].seq

        def on_commit(_session: Session) -> None:
            with self._lock:
                self._state.offsets[consumer] = position

        event.listen(session, "after_commit", on_commit, once=True)

    def acknowledged(self, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        return None

    def stats(self, *, consumer: str) -> QueueStats:
        with self._lock:
            position = self._state.offsets.get(consumer, 0)
            pending = [r for r in self._state.rows if r.seq > position]
            last = self._state.next_seq - 1
        lag = (datetime.now(UTC) - pending[0].accepted_at).total_seconds() if pending else 0.0
        return QueueStats(len(pending), max(0.0, lag), last, position)

    def purge(self, *, now: datetime, retention_s: float, idempotency_window_s: float) -> int:
        plain = now - timedelta(seconds=retention_s)
        with_id = now - timedelta(seconds=max(retention_s, idempotency_window_s))
        with self._lock:
            st = self._state
            done = min(st.offsets.values(), default=0)
            keep: list[QueuedEvent] = []
            for r in st.rows:
                limit = plain if r.event_id is None else with_id
                if r.seq <= done and r.accepted_at < limit:
                    if r.event_id is not None:
                        st.ids.discard((r.tenant_id, r.event_id))
                    continue
                keep.append(r)
            removed = len(st.rows) - len(keep)
            st.rows = keep
        return removed
