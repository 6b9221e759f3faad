"""Correlation inputs and per-partition state in the service database.

Inputs are appended by detection workers inside their batch transaction and read by the
correlator of their partition in ``seq`` order after its committed position. As with the outbox
(:mod:`vigil.bus.outbox`) a reader must never pass a lower ``seq`` that commits later: SQLite
serialises writers by construction; on PostgreSQL writers take a transaction-scoped advisory
lock before drawing sequence numbers, so appends commit in ``seq`` order. The lock is scoped to
the schema (several Vigil schemas may share one database) and taken only by transactions that
append inputs, as late as possible (right before the commit), so it is held for the insert
and the commit only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vigil.pipeline.correlation_plan import CorrelationInputEvent, decode_input
from vigil.pipeline.models import CorrelationInput, CorrelationState

#: Advisory lock (hashed with the schema name) ordering appends on PostgreSQL.
APPEND_LOCK = ":vigil-correlation-inputs"
PRUNE_CHUNK = 5000


def append_inputs(session: Session, *, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Add ``rows`` (from :func:`vigil.pipeline.correlation_plan.input_rows`) in the caller's
    transaction; rows already there (a redelivered batch) are skipped."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || :name, 0))"),
            {"name": APPEND_LOCK},
        )
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(CorrelationInput).on_conflict_do_nothing(index_elements=["input_id", "family"])
    session.connection().execute(stmt, [{**row, "created_at": now} for row in rows])


def read_inputs(
    session: Session, *, partition: int, after: int, limit: int
) -> list[CorrelationInputEvent]:
    rows = session.execute(
        select(
            CorrelationInput.seq,
            CorrelationInput.tenant_id,
            CorrelationInput.family,
            CorrelationInput.body,
        )
        .where(CorrelationInput.partition_no == partition, CorrelationInput.seq > after)
        .order_by(CorrelationInput.seq)
        .limit(limit)
    ).all()
    return [decode_input(seq, tenant, family, bytes(body)) for seq, tenant, family, body in rows]


def has_inputs(session: Session, *, partition: int, after: int) -> bool:
    """Whether ``partition`` has inputs after ``after`` (committed ones: a peek, no lock)."""
    return (
        session.execute(
            select(CorrelationInput.seq)
            .where(CorrelationInput.partition_no == partition, CorrelationInput.seq > after)
            .limit(1)
        ).first()
        is not None
    )


def ensure_state(session: Session, *, partition: int, partitions: int, now: datetime) -> None:
    """Create the partition's state row (position 0: every input is still to be read)."""
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_fn(CorrelationState)
        .values(
            partition_no=partition,
            partitions=partitions,
            position=0,
            snapshot=None,
            snapshot_position=0,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["partition_no"])
    )


def lock_state(session: Session, *, partition: int) -> CorrelationState | None:
    """The partition's state row, locked for this transaction on PostgreSQL: a second owner
    (a take-over racing a slow step) waits here and then sees the position moved."""
    return session.get(CorrelationState, partition, with_for_update=True, populate_existing=True)


def prune_inputs(session: Session, *, partition: int, upto: int, before: datetime) -> int:
    """Delete inputs of ``partition`` covered by its snapshot (``seq <= upto``) and created
    before ``before``; commits each chunk. Returns how many."""
    return _prune(
        session,
        (
            CorrelationInput.partition_no == partition,
            CorrelationInput.seq <= upto,
            CorrelationInput.created_at < before,
        ),
    )


def prune_orphans(session: Session, *, partitions: int, before: datetime) -> int:
    """Inputs of partitions that no longer exist (the count was lowered), past retention."""
    return _prune(
        session,
        (CorrelationInput.partition_no >= partitions, CorrelationInput.created_at < before),
    )


def _prune(session: Session, where: tuple[Any, ...]) -> int:
    total = 0
    while True:
        victims = (
            select(CorrelationInput.seq)
            .where(*where)
            .order_by(CorrelationInput.seq)
            .limit(PRUNE_CHUNK)
            .scalar_subquery()
        )
        deleted = (
            session.connection()
            .execute(delete(CorrelationInput).where(CorrelationInput.seq.in_(victims)))
            .rowcount
        )
        session.commit()
        total += deleted or 0
        if not deleted or deleted < PRUNE_CHUNK:
            return total


__all__ = [
    "append_inputs",
    "ensure_state",
    "has_inputs",
    "lock_state",
    "prune_inputs",
    "prune_orphans",
    "read_inputs",
]
