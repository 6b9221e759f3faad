"""The durable event queue between ingest and the detection pipeline.

:class:`EventQueue` is the interface; :class:`SqlEventQueue` keeps the queue in a SQL table
``event_queue`` — on SQLite (the embedded deployment) in a database file of its own,
``queue.db`` (:mod:`vigil.bus.queue_store` says why and how), on PostgreSQL in the service
database — and :class:`vigil.bus.queue_memory.MemoryEventQueue` is the test double. The shape
is the one a Redis Streams implementation needs too (scale-out): ``publish`` returns once the
records are durable; a consumer ``read``\\ s a batch, does its work in its own transaction,
calls ``ack`` *inside* that transaction and ``acknowledged`` after it committed (Redis: XACK
after commit, at-least-once; the pipeline's idempotency keys make redelivery harmless).

SQL semantics:

* **Durability.** ``publish`` commits one multi-row insert; a 2xx from ingest means the rows are
  in the queue's database. On SQLite (WAL, ``synchronous=NORMAL`` as :mod:`vigil.store.engine`
  sets it, on ``queue.db`` too) a committed transaction survives the process being killed
  (the WAL is in the OS page cache); only an OS crash or power loss can lose the last commits.
  ``synchronous=FULL`` would close that window at the price of an fsync per request.
* **Idempotency.** ``(tenant_id, event_id)`` is unique; the insert skips conflicting rows
  (``ON CONFLICT DO NOTHING``) and reports them as duplicates. A duplicate inside one batch is
  caught before the insert.
* **Order and exactly-once effect.** A consumer reads ``seq > offset`` (its committed offset in
  ``consumer_offsets`` of the *service* database, :mod:`vigil.bus.offsets`) and advances the
  offset in the same transaction as its results, so a crash replays exactly the uncommitted
  part. Commit order must equal ``seq`` order or a reader could pass a row that commits later:
  SQLite serialises writers anyway; on PostgreSQL publishers take a transaction-scoped advisory
  lock.
* **Gates** (SQLite, :mod:`vigil.bus.queue_gate`). ``write_gate`` orders the writers of the
  queue's file (publish, purge); ``main_gate`` the consumer's transaction in the service
  database. With the queue in a file of its own they are two gates and ingest never waits for
  a detection batch; with the queue in the service database (tests, in-memory SQLite) both are
  the same gate.
* **Retention** (:meth:`SqlEventQueue.purge`). Rows every consumer of the queue (those named
  to ``ensure_consumer``) has processed are deleted once older than ``retention_s``, except
  rows with an ``event_id``: those stay for the idempotency window (``idempotency_window_s``),
  because the row *is* the memory that this id was seen. A record re-sent after that window is
  accepted again. Purging deletes in chunks of ``PURGE_CHUNK`` rows, one short transaction
  (and write-gate hold) each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vigil.bus import offsets
from vigil.bus.models import ConsumerOffset
from vigil.bus.queue_gate import NoGate, WriteGate
from vigil.bus.queue_models import QueuedEventRow
from vigil.bus.queue_store import QueueFile, SqliteChanges, sqlite_changes

__all__ = ["SqliteChanges", "sqlite_changes"]  # re-exported: where the pipeline host finds them

if TYPE_CHECKING:
    from vigil.runtime import Runtime

log = logging.getLogger("vigil.queue")

#: Key of the PostgreSQL advisory lock that orders publishers (any constant; "vigilq" in hex).
PG_PUBLISH_LOCK = 0x76696769_6C71
QUEUE_KEY = "event_queue"
#: Records deleted per purge transaction (each one a short hold of the write gate).
PURGE_CHUNK = 2_000
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """One record to publish: its idempotency id (or None) and the bytes to store."""

    event_id: str | None
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One record as a consumer reads it."""

    seq: int
    tenant_id: str
    event_id: str | None
    accepted_at: datetime
    payload: bytes


@dataclass(frozen=True, slots=True)
class PublishResult:
    accepted: int
    duplicates: int
    #: indexes (into the published sequence) of the records skipped as duplicates
    duplicate_indexes: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    lag_seconds: float
    last_seq: int
    committed: int


Listener = Callable[[], None]


class EventQueue(Protocol):
    """What ingest and the detection pipeline need from a queue."""

    def publish(self, tenant_id: str, records: Sequence[QueueRecord]) -> PublishResult:
        """Store ``records`` durably for ``tenant_id``; duplicates of queued ids are skipped."""
        ...

    def read(self, session: Session, *, consumer: str, limit: int) -> list[QueuedEvent]:
        """The next records after ``consumer``'s committed position, oldest first."""
        ...

    def ack(self, session: Session, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        """Mark ``batch`` processed, inside the consumer's transaction (``session``)."""
        ...

    def acknowledged(self, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        """Called after the consumer's transaction committed (Redis: XACK)."""
        ...

    def stats(self, *, consumer: str) -> QueueStats: ...

    def purge(self, *, now: datetime, retention_s: float, idempotency_window_s: float) -> int:
        """Delete processed records past retention; return how many."""
        ...

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` (cheap, non-blocking) after each publish that added records."""
        ...


_OFFSETS: Table = ConsumerOffset.__table__  # type: ignore[assignment]
_ADVANCE = (
    update(_OFFSETS)
    .where(_OFFSETS.c.name == bindparam("b_name"))
    .values(position=bindparam("b_position"), updated_at=bindparam("b_at"))
)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _sqlite_time(stored: str | datetime) -> datetime:
    """A time as SQLite keeps it (naive UTC text, as SQLAlchemy writes it), made aware."""
    if isinstance(stored, datetime):
        return _utc(stored)
    return datetime.fromisoformat(stored).replace(tzinfo=UTC)


def dedupe_batch(records: Sequence[QueueRecord]) -> tuple[list[int], list[int]]:
    """Indexes to insert and indexes that repeat an ``event_id`` earlier in the same batch."""
    keep: list[int] = []
    repeats: list[int] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if rec.event_id is not None:
            if rec.event_id in seen:
                repeats.append(i)
                continue
            seen.add(rec.event_id)
        keep.append(i)
    return keep, repeats


def _offset_sqlite(session: Session, consumer: str) -> int:
    """The consumer's committed offset, read on the driver (the consumer's hot path)."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        found = cursor.execute(
            "SELECT position FROM consumer_offsets WHERE name = ?", (consumer,)
        ).fetchone()
    finally:
        cursor.close()
    return int(found[0]) if found else 0


def _read_sqlite(session: Session, position: int, limit: int) -> list[QueuedEvent]:
    """The records after ``position`` on SQLite, one query on the driver. Rows of one publish
    share their ``accepted_at`` text, so each distinct text is parsed once."""
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        rows = cursor.execute(
            "SELECT seq, tenant_id, event_id, accepted_at, payload FROM event_queue "
            "WHERE seq > ? ORDER BY seq LIMIT ?",
            (position, limit),
        ).fetchall()
    finally:
        cursor.close()
    stamps: dict[str, datetime] = {}
    out = []
    for seq, tenant, event_id, accepted, payload in rows:
        moment = stamps.get(accepted)
        if moment is None:
            moment = stamps[accepted] = _sqlite_time(accepted)
        out.append(QueuedEvent(seq, tenant, event_id, moment, payload))
    return out


class _Listeners:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("queue listener failed")


class SqlEventQueue(_Listeners):
    """The queue as a table of the service's database (see the module docstring)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        gate: WriteGate | NoGate | None = None,
        main_gate: WriteGate | NoGate | None = None,
        queue_sessions: sessionmaker[Session] | None = None,
        queue_file: QueueFile | None = None,
    ) -> None:
        """``sessions``: the service database (consumer offsets, the consumers' work).
        ``queue_sessions``: the database holding ``event_queue`` when it is another one
        (``queue.db``, :func:`vigil.bus.queue_store.open_sql_queue`), checked to still be
        ``queue_file``. ``gate`` orders the writers of the queue's database, ``main_gate`` the
        consumers' transactions; without ``queue_sessions`` both are one database, one gate."""
        super().__init__()
        self._sessions = sessions
        self._queue_sessions = queue_sessions or sessions
        self._queue_file = queue_file
        #: writers of the queue's database queue up here (see :mod:`vigil.bus.queue_gate`)
        self.write_gate: WriteGate | NoGate = gate or NoGate()
        #: the consumers' transactions (results + offset) in the service database
        self.main_gate: WriteGate | NoGate = (
            self.write_gate if queue_sessions is None else main_gate or NoGate()
        )
        #: records without an id up to here were purged by this process already
        self._plain_purged_to = 0
        #: the consumers reading this queue (``ensure_consumer``): purge waits for all of them
        self._consumers: set[str] = set()

    # ---------------------------------------------------------------- producer
    def publish(self, tenant_id: str, records: Sequence[QueueRecord]) -> PublishResult:
        if not records:
            return PublishResult(0, 0)
        keep, repeats = dedupe_batch(records)
        now = datetime.now(UTC)
        self._check_file()
        with self.write_gate.hold(), self._queue_sessions() as session:
            dialect = session.get_bind().dialect.name
            if dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_PUBLISH_LOCK})
            existing = self._existing_ids(session, tenant_id, records, keep)
            if dialect == "sqlite":
                inserted = self._insert_sqlite(session, tenant_id, records, keep, now)
            else:
                stmt = postgresql.insert(QueuedEventRow).on_conflict_do_nothing(
                    index_elements=["tenant_id", "event_id"]
                )
                rows = [
                    {
                        "tenant_id": tenant_id,
                        "event_id": records[i].event_id,
                        "accepted_at": now,
                        "payload": records[i].payload,
                    }
                    for i in keep
                ]
                inserted = session.connection().execute(stmt, rows).rowcount
            session.commit()
        dup_indexes = sorted([*repeats, *(i for i in keep if records[i].event_id in existing)])
        accepted = inserted if inserted is not None and inserted >= 0 else len(keep) - len(existing)
        if accepted:
            self._notify()
        return PublishResult(accepted, len(records) - accepted, tuple(dup_indexes))

    @staticmethod
    def _existing_ids(
        session: Session, tenant_id: str, records: Sequence[QueueRecord], keep: list[int]
    ) -> set[str | None]:
        """Which ids are already queued (for the per-record answer); the unique constraint,
        not this query, is what guarantees no double insert."""
        ids = [records[i].event_id for i in keep if records[i].event_id is not None]
        existing: set[str | None] = set()
        for start in range(0, len(ids), 500):
            existing.update(
                session.scalars(
                    select(QueuedEventRow.event_id).where(
                        QueuedEventRow.tenant_id == tenant_id,
                        QueuedEventRow.event_id.in_(ids[start : start + 500]),
                    )
                )
            )
        return existing

    @staticmethod
    def _insert_sqlite(
        session: Session,
        tenant_id: str,
        records: Sequence[QueueRecord],
        keep: list[int],
        now: datetime,
    ) -> int:
        """The hot path of ingest: one executemany on the driver, no per-row SQLAlchemy work.
        ``accepted_at`` is written in the text form SQLAlchemy's SQLite DateTime reads back."""
        stamp = now.strftime(_SQLITE_DATETIME)
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                "INSERT INTO event_queue (tenant_id, event_id, accepted_at, payload) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, event_id) DO NOTHING",
                [(tenant_id, records[i].event_id, stamp, records[i].payload) for i in keep],
            )
            return int(cursor.rowcount)
        finally:
            cursor.close()

    # ---------------------------------------------------------------- consumer
    def _check_file(self) -> None:
        if self._queue_file is not None:
            self._queue_file.check()

    def dispose(self) -> None:
        """Close the pool of ``queue.db`` when this queue opened one."""
        if self._queue_sessions is not self._sessions:
            bind = self._queue_sessions.kw.get("bind")
            if bind is not None:
                bind.dispose()

    def read(self, session: Session, *, consumer: str, limit: int) -> list[QueuedEvent]:
        if session.get_bind().dialect.name == "sqlite":
            self._check_file()
            position = _offset_sqlite(session, consumer)
            if self._queue_sessions is self._sessions:
                return _read_sqlite(session, position, limit)
            # queue.db: a WAL read outside the consumer's transaction, no lock, no gate (the
            # module docstring of vigil.bus.queue_store says why that is exact)
            with self._queue_sessions() as queue_session:
                return _read_sqlite(queue_session, position, limit)
        # Lock the consumer's offset row for this transaction: two replicas of one consumer on
        # PostgreSQL take turns instead of processing the same rows.
        locked = session.execute(
            select(ConsumerOffset.position).where(ConsumerOffset.name == consumer).with_for_update()
        ).scalar_one_or_none()
        result = session.execute(
            select(
                QueuedEventRow.seq,
                QueuedEventRow.tenant_id,
                QueuedEventRow.event_id,
                QueuedEventRow.accepted_at,
                QueuedEventRow.payload,
            )
            .where(QueuedEventRow.seq > int(locked or 0))
            .order_by(QueuedEventRow.seq)
            .limit(limit)
        )
        return [
            QueuedEvent(seq, tenant, event_id, _utc(accepted), bytes(payload))
            for seq, tenant, event_id, accepted, payload in result
        ]

    def ack(self, session: Session, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        if not batch:
            return
        # One prepared UPDATE (an ORM load and flush cost ~1 ms of the worker's transaction):
        # ``ensure_consumer`` made the row and ``read`` locked it.
        moved = session.connection().execute(
            _ADVANCE, {"b_name": consumer, "b_position": batch[-1].seq, "b_at": datetime.now(UTC)}
        )
        if not moved.rowcount:
            offsets.advance(session, name=consumer, position=batch[-1].seq)

    def acknowledged(self, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        return None

    def ensure_consumer(self, consumer: str) -> None:
        """Create the consumer's offset row (at 0) so ``read`` always has a row to lock, and
        count it among the consumers whose progress bounds :meth:`purge`."""
        self._consumers.add(consumer)
        with self.main_gate.hold(), self._sessions() as session:
            if session.get(ConsumerOffset, consumer) is not None:
                return
            offsets.advance(session, name=consumer, position=0)
            try:
                session.commit()
            except IntegrityError:
                # Another process (two workers starting at once) made the row first.
                session.rollback()

    # ---------------------------------------------------------------- observing
    def stats(self, *, consumer: str) -> QueueStats:
        self._check_file()
        with self._sessions() as session:
            committed = offsets.get(session, name=consumer)
        with self._queue_sessions() as session:
            last = session.execute(
                select(func.coalesce(func.max(QueuedEventRow.seq), 0))
            ).scalar_one()
            depth = session.execute(
                select(func.count()).where(QueuedEventRow.seq > committed)
            ).scalar_one()
            oldest = session.execute(
                select(QueuedEventRow.accepted_at)
                .where(QueuedEventRow.seq > committed)
                .order_by(QueuedEventRow.seq)
                .limit(1)
            ).scalar_one_or_none()
        lag = 0.0
        if oldest is not None:
            lag = max(0.0, (datetime.now(UTC) - _utc(oldest)).total_seconds())
        return QueueStats(int(depth), lag, int(last), committed)

    def purge(self, *, now: datetime, retention_s: float, idempotency_window_s: float) -> int:
        plain_cutoff = now - timedelta(seconds=retention_s)
        id_cutoff = now - timedelta(seconds=max(retention_s, idempotency_window_s))
        if not self._consumers:
            return 0  # no consumer of this queue known: nothing is safe to delete
        with self._sessions() as session:
            # Only this queue's consumers: ``consumer_offsets`` also holds outbox readers,
            # whose positions count outbox events, not queue records.
            positions: dict[str, int] = {
                name: int(position)
                for name, position in session.execute(
                    select(ConsumerOffset.name, ConsumerOffset.position).where(
                        ConsumerOffset.name.in_(sorted(self._consumers))
                    )
                )
            }
            done = min(positions.get(name, 0) for name in self._consumers)
        self._check_file()
        with self._queue_sessions() as session:
            plain_upper = min(done, self._last_accepted_before(session, plain_cutoff))
            id_upper = min(done, self._last_accepted_before(session, id_cutoff))
        # Records without an id past retention, above what earlier purges of this process
        # cleared (so the ids kept between them are not scanned again and again).
        plain = QueuedEventRow.event_id.is_(None)
        lower = self._plain_purged_to
        total = self._delete_chunks(
            plain & (QueuedEventRow.accepted_at < plain_cutoff), lower=lower, upper=plain_upper
        )
        with self._queue_sessions() as session:
            kept = session.execute(
                select(func.min(QueuedEventRow.seq)).where(
                    plain, QueuedEventRow.seq > lower, QueuedEventRow.seq <= plain_upper
                )
            ).scalar_one_or_none()
        self._plain_purged_to = max(lower, int(kept) - 1 if kept is not None else plain_upper)
        # Then everything past the idempotency window: a prefix of ids by now.
        return total + self._delete_chunks(
            QueuedEventRow.accepted_at < id_cutoff, lower=0, upper=id_upper
        )

    @staticmethod
    def _last_accepted_before(session: Session, cutoff: datetime) -> int:
        """The seq of the newest record accepted before ``cutoff`` (0: none), found through
        the ``accepted_at`` index: an upper bound for the scans (records are stamped before
        they wait for the write gate, so a lower seq may carry a slightly later stamp; such a
        record is left for a later purge)."""
        seq = session.execute(
            select(QueuedEventRow.seq)
            .where(QueuedEventRow.accepted_at < cutoff)
            .order_by(QueuedEventRow.accepted_at.desc(), QueuedEventRow.seq.desc())
            .limit(1)
        ).scalar_one_or_none()
        return int(seq or 0)

    def _delete_chunks(self, where: ColumnElement[bool], *, lower: int, upper: int) -> int:
        """Delete the records with ``lower < seq <= upper`` and ``where``, ``PURGE_CHUNK`` per
        transaction, taking the write gate for each: ingest and the detection worker never wait
        for more than one chunk."""
        total = 0
        while lower < upper:
            query = select(QueuedEventRow.seq).where(
                QueuedEventRow.seq > lower, QueuedEventRow.seq <= upper, where
            )
            with self.write_gate.hold(), self._queue_sessions() as session:
                seqs = list(session.scalars(query.order_by(QueuedEventRow.seq).limit(PURGE_CHUNK)))
                if not seqs:
                    return total
                session.execute(delete(QueuedEventRow).where(QueuedEventRow.seq.in_(seqs)))
                session.commit()
            total += len(seqs)
            if len(seqs) < PURGE_CHUNK:
                return total
            lower = seqs[-1]
        return total


def queue_of(runtime: Runtime) -> EventQueue:
    """The runtime's queue (created on first use: Redis Streams when configured, else the SQL
    queue, :func:`vigil.bus.queue_store.open_sql_queue`)."""
    queue: EventQueue | None = runtime.extras.get(QUEUE_KEY)
    if queue is None:
        from vigil.bus.redis_queue import redis_queue_for

        settings = runtime.settings
        # Scale-out: VIGIL_QUEUE_URL=redis://... selects Redis Streams.
        queue = redis_queue_for(settings)
        if queue is None:
            from vigil.bus.queue_store import open_sql_queue

            queue = open_sql_queue(settings, runtime.sessions, runtime.engine)
        runtime.extras[QUEUE_KEY] = queue
    return queue
