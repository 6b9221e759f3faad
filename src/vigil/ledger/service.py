"""The audit ledger's service functions (keyword-only; the API and CLI call these).

Functions run inside the caller's session and never commit: an audit entry belongs to the same
transaction as the change it records. Writers (``append*``, ``sign_checkpoint``, ``rotate_key``,
``archive``) first take the log's write lock (:func:`vigil.ledger.tree.lock_head`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil import errors
from vigil.ledger import keys, merkle, tree
from vigil.ledger.checkpoint import (
    ROTATION_EXTENSION,
    Checkpoint,
    SignedCheckpoint,
    SignerKey,
    VerifierKey,
    check_key_name,
)
from vigil.ledger.checkpoint import sign_checkpoint as sign_note_checkpoint
from vigil.ledger.entry import Entry, EntryError, change_digest, decode_entry, make_entry
from vigil.ledger.errors import (
    InconsistentCheckpointError,
    IntegrityError,
    LedgerError,
    ProofError,
    SigningKeyError,
)
from vigil.ledger.models import AuditCheckpoint, AuditEntry, AuditKey
from vigil.ledger.schemas import (
    ArchiveRead,
    AuditEntryCreate,
    AuditEntryPage,
    AuditEntryRead,
    CheckpointRead,
    ConsistencyProofRead,
    InclusionProofRead,
    SigningKeyRead,
    b64,
)
from vigil.store.bulk import insert_rows

if TYPE_CHECKING:
    from vigil.ledger.verify import VerifyReport

ACTIVE = "active"
RETIRED = "retired"
SYSTEM_TENANT = "system"


class NotFoundError(LedgerError, errors.NotFoundError):
    """The requested entry or checkpoint does not exist."""


def _now() -> datetime:
    return datetime.now(UTC)


# --- reading helpers ------------------------------------------------------------------------------


def _entry_read(
    entry: Entry, data: bytes, leaf: bytes, when: datetime | None = None
) -> AuditEntryRead:
    return AuditEntryRead(
        seq=entry.seq,
        time=entry.when if when is None else when,
        tenant=entry.tenant,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        request_id=entry.request_id,
        change_digest=entry.change_digest,
        leaf_hash=b64(leaf),
        canonical=data.decode(),
    )


def _checkpoint_read(row: AuditCheckpoint) -> CheckpointRead:
    cp = SignedCheckpoint.parse(row.note).checkpoint
    return CheckpointRead(
        origin=cp.origin,
        size=cp.size,
        root_hash=b64(cp.root),
        key_id=row.key_id,
        note=row.note,
        created_at=row.created_at,
    )


def _key_read(row: AuditKey) -> SigningKeyRead:
    return SigningKeyRead(
        key_id=row.key_id,
        vkey=row.vkey,
        status=row.status,
        created_at=row.created_at,
        retired_at=row.retired_at,
    )


def _active_key(session: Session) -> AuditKey | None:
    return session.scalars(select(AuditKey).where(AuditKey.status == ACTIVE)).first()


def _latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())).first()


# --- keys -----------------------------------------------------------------------------------------


def init_log(
    session: Session,
    *,
    home: Path,
    origin: str | None = None,
    signing_key: SignerKey | None = None,
) -> SigningKeyRead:
    """Give the log its origin and first signing key (idempotent: returns the active key).

    Without ``signing_key`` a fresh Ed25519 key is written to ``home/keys`` with mode 0600.
    """
    tree.lock_head(session)
    active = _active_key(session)
    if active is not None:
        return _key_read(active)
    _, current_origin = tree.read_head(session)
    name = current_origin or origin or (signing_key.name if signing_key else None)
    name = check_key_name(name or f"vigil.local/audit/{secrets.token_hex(4)}")
    key = signing_key or SignerKey.generate(name)
    if key.name != name:
        raise SigningKeyError(f"signing key name {key.name!r} differs from the log origin {name!r}")
    if signing_key is None:
        keys.write_private_key(keys.key_path(home, key.key_id.hex()), key)
    tree.set_origin(session, name)
    row = AuditKey(
        key_id=key.key_id.hex(), vkey=key.verifier().encode(), status=ACTIVE, created_at=_now()
    )
    session.add(row)
    session.flush()
    return _key_read(row)


def list_keys(session: Session) -> list[SigningKeyRead]:
    rows = session.scalars(select(AuditKey).order_by(AuditKey.created_at)).all()
    return [_key_read(r) for r in rows]


def public_key(session: Session) -> str:
    """The active verifier key (``name+id+base64``)."""
    active = _active_key(session)
    if active is None:
        raise SigningKeyError("audit log: no signing key yet; run `vigil audit init-key`")
    return active.vkey


# --- appends --------------------------------------------------------------------------------------


def append_many(session: Session, *, entries: Sequence[AuditEntryCreate]) -> list[AuditEntryRead]:
    """Append entries in order, in the caller's transaction; O(log n) node writes per entry."""
    if not entries:
        return []
    start, _ = tree.lock_head(session, len(entries))
    edge = tree.compact_range(session, start)
    now = _now()
    rows: list[dict[str, Any]] = []
    nodes: list[dict[str, Any]] = []
    out: list[AuditEntryRead] = []

    def on_node(level: int, idx: int, h: bytes) -> None:
        nodes.append({"level": level, "idx": idx, "hash": h})

    for k, item in enumerate(entries):
        if item.change_digest is not None and item.change is not None:
            raise EntryError("audit entry: give either change or change_digest, not both")
        digest = item.change_digest or change_digest(item.change)
        entry = make_entry(
            seq=start + k,
            time=item.time or now,
            tenant=item.tenant,
            actor=item.actor,
            action=item.action,
            target=item.target,
            request_id=item.request_id,
            digest=digest,
        )
        data = entry.canonical()
        leaf = merkle.leaf_hash(data)
        edge.append(leaf, on_node)
        when = entry.when
        rows.append(
            {
                "seq": entry.seq,
                "data": data,
                "leaf_hash": leaf,
                "tenant": entry.tenant,
                "actor": entry.actor,
                "action": entry.action,
                "time": when,
            }
        )
        out.append(_entry_read(entry, data, leaf, when))
    insert_rows(session, AuditEntry, rows)
    tree.insert_nodes(session, nodes)
    return out


def append(
    session: Session,
    *,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    request_id: str | None = None,
    change: Any = None,
    change_digest: str | None = None,
    time: datetime | None = None,
) -> AuditEntryRead:
    """Append one security-relevant action to the log."""
    item = AuditEntryCreate(
        tenant=tenant,
        actor=actor,
        action=action,
        target=target,
        request_id=request_id,
        change=change,
        change_digest=change_digest,
        time=time,
    )
    return append_many(session, entries=[item])[0]


# --- reads ----------------------------------------------------------------------------------------


def tree_size(session: Session) -> int:
    return tree.read_head(session)[0]


def get_entry(session: Session, *, seq: int) -> AuditEntryRead:
    row = session.get(AuditEntry, seq)
    if row is None:
        raise NotFoundError(f"audit entry {seq}: not in the hot log (never written or archived)")
    data = bytes(row.data)
    return _entry_read(decode_entry(data, where=f"audit entry {seq}"), data, bytes(row.leaf_hash))


def list_entries(
    session: Session,
    *,
    tenant: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    after_seq: int | None = None,
    limit: int = 100,
) -> AuditEntryPage:
    """A page of entries in sequence order; pass ``next_after`` back as ``after_seq``."""
    limit = max(1, min(limit, 1000))
    stmt = select(AuditEntry).order_by(AuditEntry.seq).limit(limit + 1)
    if tenant is not None:
        stmt = stmt.where(AuditEntry.tenant == tenant)
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action is not None:
        stmt = stmt.where(AuditEntry.action == action)
    if after_seq is not None:
        stmt = stmt.where(AuditEntry.seq > after_seq)
    rows = session.scalars(stmt).all()
    items = [
        _entry_read(
            decode_entry(bytes(r.data), where=f"audit entry {r.seq}"),
            bytes(r.data),
            bytes(r.leaf_hash),
        )
        for r in rows[:limit]
    ]
    next_after = items[-1].seq if len(rows) > limit else None
    return AuditEntryPage(items=items, next_after=next_after)


def root_hash(session: Session, *, size: int | None = None) -> bytes:
    head = tree_size(session)
    size = head if size is None else size
    tree.check_size(size, head, "audit root")
    return tree.root_at(session, size)


# --- checkpoints ----------------------------------------------------------------------------------


def get_checkpoint(session: Session, *, size: int | None = None) -> CheckpointRead:
    """The latest signed checkpoint, or the latest one signed at ``size``."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc())
    if size is not None:
        stmt = stmt.where(AuditCheckpoint.size == size)
    row = session.scalars(stmt).first()
    if row is None:
        where = f" at size {size}" if size is not None else ""
        raise NotFoundError(f"audit checkpoint{where}: none signed yet")
    return _checkpoint_read(row)


def list_checkpoints(session: Session) -> list[CheckpointRead]:
    rows = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.id)).all()
    return [_checkpoint_read(r) for r in rows]


def _check_consistent(session: Session, origin: str, size: int, root: bytes) -> None:
    """Refuse to sign ``(size, root)`` unless it provably extends the last signed checkpoint."""
    last = _latest_checkpoint(session)
    if last is None:
        return
    prev = SignedCheckpoint.parse(last.note).checkpoint
    where = f"checkpoint {origin}@{size}"
    if prev.origin != origin:
        raise InconsistentCheckpointError(f"{where}: last checkpoint has origin {prev.origin}")
    if prev.size > size:
        raise InconsistentCheckpointError(
            f"{where}: the log shrank below its last signed checkpoint (size {prev.size})"
        )
    try:
        proof = tree.consistency(session, prev.size, size)
    except IntegrityError as exc:
        raise InconsistentCheckpointError(f"{where}: cannot prove consistency: {exc}") from None
    if not merkle.verify_consistency(prev.size, size, proof, prev.root, root):
        raise InconsistentCheckpointError(
            f"{where}: the stored tree is not consistent with signed checkpoint #{last.id} "
            f"(size {prev.size}); refusing to sign"
        )


def _store_checkpoint(
    session: Session, signed: SignedCheckpoint, key_id: str, now: datetime
) -> AuditCheckpoint:
    row = AuditCheckpoint(
        size=signed.checkpoint.size,
        root=signed.checkpoint.root,
        note=signed.encode(),
        key_id=key_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def sign_checkpoint(
    session: Session,
    *,
    home: Path,
    signing_key: SignerKey | None = None,
    force: bool = False,
) -> CheckpointRead:
    """Sign a checkpoint of the whole log (on demand or from a schedule).

    Returns the latest checkpoint unchanged when the log has not grown since (unless ``force``).
    Never signs a checkpoint inconsistent with the last one signed.
    """
    size, origin = tree.lock_head(session)
    active = _active_key(session)
    if active is None:
        init_log(session, home=home, signing_key=signing_key)
        size, origin = tree.read_head(session)
        active = _active_key(session)
    if active is None or origin is None:
        raise SigningKeyError("audit log: no active signing key after initialisation")
    last = _latest_checkpoint(session)
    if last is not None and not force and last.size == size and last.key_id == active.key_id:
        return _checkpoint_read(last)
    signer = keys.load_signer(home, active.key_id, signing_key)
    root = tree.root_at(session, size)
    _check_consistent(session, origin, size, root)
    signed = sign_note_checkpoint(Checkpoint(origin, size, root), [signer])
    return _checkpoint_read(_store_checkpoint(session, signed, active.key_id, _now()))


def rotate_key(
    session: Session,
    *,
    home: Path,
    actor: str,
    signing_key: SignerKey | None = None,
    new_key: SignerKey | None = None,
) -> CheckpointRead:
    """Replace the signing key; the new key is announced in a checkpoint signed by the old one.

    The rotation is itself logged; the announcing checkpoint (extension line
    ``vigil-key-rotation <old vkey> <new vkey>``) is signed by both keys, so old checkpoints stay
    verifiable from either key.
    """
    tree.lock_head(session)
    active = _active_key(session)
    if active is None:
        raise SigningKeyError("audit log: no signing key to rotate; run `vigil audit init-key`")
    old = keys.load_signer(home, active.key_id, signing_key)
    new = new_key or SignerKey.generate(old.name)
    if new.name != old.name or new.key_id == old.key_id:
        raise SigningKeyError("key rotation: the new key must be distinct and named as the log")
    append(
        session,
        tenant=SYSTEM_TENANT,
        actor=actor,
        action="audit.key.rotate",
        target=f"key:{new.key_id.hex()}",
        change={"old": old.verifier().encode(), "new": new.verifier().encode()},
    )
    size, origin = tree.read_head(session)
    if origin is None:
        raise SigningKeyError("audit log: no origin recorded")
    root = tree.root_at(session, size)
    _check_consistent(session, origin, size, root)
    line = f"{ROTATION_EXTENSION} {old.verifier().encode()} {new.verifier().encode()}"
    signed = sign_note_checkpoint(Checkpoint(origin, size, root, (line,)), [old, new])
    if new_key is None:
        keys.write_private_key(keys.key_path(home, new.key_id.hex()), new)
    now = _now()
    active.status = RETIRED
    active.retired_at = now
    session.add(
        AuditKey(
            key_id=new.key_id.hex(), vkey=new.verifier().encode(), status=ACTIVE, created_at=now
        )
    )
    return _checkpoint_read(_store_checkpoint(session, signed, active.key_id, now))


# --- proofs ---------------------------------------------------------------------------------------


def _default_size(session: Session, tree_size: int | None) -> int:
    if tree_size is not None:
        tree.check_size(tree_size, tree.read_head(session)[0], "audit proof")
        return tree_size
    last = _latest_checkpoint(session)
    if last is None:
        raise NotFoundError("audit proof: no checkpoint signed yet; give a tree size")
    return last.size


def inclusion_proof(
    session: Session, *, seq: int, tree_size: int | None = None
) -> InclusionProofRead:
    """Audit path of entry ``seq`` in the tree of ``tree_size`` (default: latest checkpoint)."""
    size = _default_size(session, tree_size)
    if not 0 <= seq < size:
        raise ProofError(f"audit inclusion proof: entry {seq} is not in a tree of size {size}")
    leaf, path = tree.inclusion(session, seq, size)
    return InclusionProofRead(
        seq=seq, tree_size=size, leaf_hash=b64(leaf), hashes=[b64(h) for h in path]
    )


def consistency_proof(
    session: Session, *, old_size: int, new_size: int | None = None
) -> ConsistencyProofRead:
    """Proof that the tree at ``old_size`` is a prefix of the tree at ``new_size``."""
    size = _default_size(session, new_size)
    if not 0 <= old_size <= size:
        raise ProofError(f"audit consistency proof: no proof from size {old_size} to {size}")
    path = tree.consistency(session, old_size, size)
    return ConsistencyProofRead(old_size=old_size, new_size=size, hashes=[b64(h) for h in path])


# --- export, retention, offline verification (implemented in export.py / verify.py) ---------------


def export(
    session: Session,
    *,
    out: Path,
    home: Path,
    signing_key: SignerKey | None = None,
    sign: bool = True,
) -> dict[str, int | str]:
    """Write entries, checkpoints and the public key to ``out`` (see :mod:`.export`)."""
    from vigil.ledger import export as _export

    return _export.export(session, out=out, home=home, signing_key=signing_key, sign=sign)


def archive(
    session: Session,
    *,
    before: int,
    out: Path,
    home: Path,
    signing_key: SignerKey | None = None,
) -> ArchiveRead:
    """Move entries below ``before`` out of the database into a verifiable directory."""
    from vigil.ledger import export as _export

    return _export.archive(session, before=before, out=out, home=home, signing_key=signing_key)


def verify_export(
    *,
    directory: Path,
    trusted_keys: Sequence[VerifierKey] | None = None,
    saved_checkpoints: Sequence[str] = (),
) -> VerifyReport:
    """Verify an export directory offline (see :mod:`.verify`)."""
    from vigil.ledger import verify as _verify

    return _verify.verify_export(
        directory, trusted_keys=trusted_keys, saved_checkpoints=saved_checkpoints
    )
