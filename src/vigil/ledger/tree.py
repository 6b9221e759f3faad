"""The Merkle tree in SQL: head lock, node fetches, appends, roots and proofs at any size.

Level-0 hashes live in ``audit_entries.leaf_hash`` (or, once archived, in ``audit_nodes`` at level
0); levels >= 1 live in ``audit_nodes``. Everything here runs inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from vigil.ledger import merkle
from vigil.ledger.errors import IntegrityError, LedgerError, ProofError
from vigil.ledger.merkle import NodeId
from vigil.ledger.models import AuditEntry, AuditHead, AuditNode
from vigil.store.bulk import insert_rows

HEAD_ID = 1
_CHUNK = 400  # ids per query, well under SQLite's bound-parameter limit
_LEVELS = 64


def lock_head(session: Session, grow: int = 0) -> tuple[int, str | None]:
    """Take the log's write lock and reserve ``grow`` sequence numbers.

    Returns the tree size *before* the reservation and the origin. The lock is the head row's
    update: held until the transaction ends, on SQLite (database write lock) and PostgreSQL (row
    lock) alike.
    """
    stmt = (
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(size=AuditHead.size + grow)
        .returning(AuditHead.size, AuditHead.origin)
        .execution_options(synchronize_session=False)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        raise LedgerError("audit_head: the row is missing; run the database migrations")
    return int(row[0]) - grow, row[1]


def read_head(session: Session) -> tuple[int, str | None]:
    row = session.execute(
        select(AuditHead.size, AuditHead.origin).where(AuditHead.id == HEAD_ID)
    ).one_or_none()
    if row is None:
        raise LedgerError("audit_head: the row is missing; run the database migrations")
    return int(row[0]), row[1]


def set_origin(session: Session, origin: str) -> None:
    session.execute(
        update(AuditHead)
        .where(AuditHead.id == HEAD_ID)
        .values(origin=origin)
        .execution_options(synchronize_session=False)
    )


def fetch_nodes(session: Session, ids: Iterable[NodeId]) -> dict[NodeId, bytes]:
    """Hashes of the named perfect subtrees (missing ones are simply absent).

    One query, ``(level = ? AND idx IN (...)) OR ...``: an index lookup per node on both backends
    (a row-value ``IN`` makes SQLite scan the table).
    """
    by_level: dict[int, list[int]] = {}
    for level, idx in set(ids):
        by_level.setdefault(level, []).append(idx)
    found: dict[NodeId, bytes] = {}
    groups = sorted(by_level.items())
    for i in range(0, len(groups), _LEVELS):
        cond = or_(
            *(
                and_(AuditNode.level == level, AuditNode.idx.in_(sorted(idxs)))
                for level, idxs in groups[i : i + _LEVELS]
            )
        )
        rows = session.execute(select(AuditNode.level, AuditNode.idx, AuditNode.hash).where(cond))
        found.update({(int(lvl), int(idx)): bytes(h) for lvl, idx, h in rows})
    leaves = sorted(idx for idx in by_level.get(0, []) if (0, idx) not in found)
    for i in range(0, len(leaves), _CHUNK):
        rows2 = session.execute(
            select(AuditEntry.seq, AuditEntry.leaf_hash).where(
                AuditEntry.seq.in_(leaves[i : i + _CHUNK])
            )
        )
        found.update({(0, int(seq)): bytes(h) for seq, h in rows2})
    return found


def _require(session: Session, ids: Iterable[NodeId], what: str) -> dict[NodeId, bytes]:
    ids = list(ids)
    found = fetch_nodes(session, ids)
    missing = [n for n in ids if n not in found]
    if missing:
        level, idx = missing[0]
        raise IntegrityError(
            f"audit tree: node (level {level}, index {idx}) needed for {what} is missing"
        )
    return found


def compact_range(session: Session, size: int) -> merkle.CompactRange:
    """The right edge of the tree of ``size`` leaves (the state an append continues from)."""
    ids = merkle.root_nodes(size)
    found = _require(session, ids, f"the tree edge at size {size}")
    return merkle.CompactRange.from_hashes(0, size, [found[n] for n in ids])


def insert_nodes(session: Session, nodes: Sequence[dict[str, Any]]) -> None:
    if nodes:
        insert_rows(session, AuditNode, nodes)


def root_at(session: Session, size: int) -> bytes:
    if size == 0:
        return merkle.EMPTY_ROOT
    ids = merkle.root_nodes(size)
    found = _require(session, ids, f"the root at size {size}")
    return merkle.fold([found[n] for n in ids])


def inclusion(session: Session, index: int, size: int) -> tuple[bytes, list[bytes]]:
    """``(leaf hash, audit path)`` of leaf ``index`` in the tree of ``size`` leaves."""
    plan = merkle.inclusion_plan(index, size)
    ids = merkle.plan_ids(plan) | {(0, index)}
    found = _require(session, ids, f"the inclusion proof of {index} at size {size}")
    return found[(0, index)], merkle.resolve_plan(plan, found)


def consistency(session: Session, old_size: int, new_size: int) -> list[bytes]:
    plan = merkle.consistency_plan(old_size, new_size)
    found = _require(
        session, merkle.plan_ids(plan), f"the consistency proof {old_size} -> {new_size}"
    )
    return merkle.resolve_plan(plan, found)


def check_size(size: int, tree_size: int, what: str) -> None:
    if not 0 <= size <= tree_size:
        raise ProofError(f"{what}: size {size} is outside the log (size {tree_size})")
