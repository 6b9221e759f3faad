"""Writing the log out: full exports, archives (retention) and single-entry proof bundles.

An export directory holds:

* ``entries.jsonl``: one canonical entry per line, exactly the bytes that were hashed;
* ``leaf_hashes.txt``: the leaf hash the database recorded for each line (hex), so a verifier can
  name an entry whose content changed;
* ``checkpoint.txt``: the latest signed checkpoint; ``checkpoints.jsonl``: every signed checkpoint,
  oldest first (key rotations are announced there);
* ``public_key.txt``: the active verifier key;
* ``manifest.json``: origin, the entry range ``[begin, end)``, the hashes of the archived prefix
  ``[0, begin)`` (``base``), the checkpoint size, and for archives a consistency proof from
  ``end`` to that size (``tail_proof``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import SmallInteger, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from vigil.ledger import merkle, service, tree
from vigil.ledger.checkpoint import SignedCheckpoint, SignerKey
from vigil.ledger.errors import ExportError, ProofError
from vigil.ledger.models import AuditArchive, AuditCheckpoint, AuditEntry, AuditNode
from vigil.ledger.schemas import ArchiveRead, b64

EXPORT_FORMAT = "vigil-audit-export/1"
BUNDLE_FORMAT = "vigil-audit-inclusion/1"
ENTRIES = "entries.jsonl"
LEAF_HASHES = "leaf_hashes.txt"
CHECKPOINT = "checkpoint.txt"
CHECKPOINTS = "checkpoints.jsonl"
PUBLIC_KEY = "public_key.txt"
MANIFEST = "manifest.json"


def hot_begin(session: Session) -> int:
    """The first sequence number still in the hot database."""
    archived = session.scalar(select(func.max(AuditArchive.end)))
    return int(archived or 0)


def _prepare_dir(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: directory is not empty; choose a new one")
    out.mkdir(parents=True, exist_ok=True)


def _write_dir(
    session: Session,
    *,
    out: Path,
    begin: int,
    end: int | None,
    checkpoint_size: int,
    note: str,
    origin: str,
) -> int:
    """Write one export directory; ``end=None`` means every hot row from ``begin`` on."""
    _prepare_dir(out)
    stmt = (
        select(AuditEntry.seq, AuditEntry.data, AuditEntry.leaf_hash)
        .where(AuditEntry.seq >= begin)
        .order_by(AuditEntry.seq)
        .execution_options(yield_per=5000)
    )
    if end is not None:
        stmt = stmt.where(AuditEntry.seq < end)
    count = 0
    with (
        (out / ENTRIES).open("wb") as entries_fh,
        (out / LEAF_HASHES).open("w", encoding="ascii") as hashes_fh,
    ):
        for _seq, data, leaf in session.execute(stmt):
            entries_fh.write(bytes(data) + b"\n")
            hashes_fh.write(bytes(leaf).hex() + "\n")
            count += 1
    stop = checkpoint_size if end is None else end
    base_ids = merkle.root_nodes(begin)
    base = tree.fetch_nodes(session, base_ids)
    if any(n not in base for n in base_ids):
        raise ExportError(f"{out}: hashes of the archived prefix [0, {begin}) are missing")
    tail = tree.consistency(session, stop, checkpoint_size) if stop < checkpoint_size else []
    manifest = {
        "format": EXPORT_FORMAT,
        "origin": origin,
        "begin": begin,
        "end": stop,
        "base": [b64(base[n]) for n in base_ids],
        "checkpoint_size": checkpoint_size,
        "tail_proof": [b64(h) for h in tail],
        "exported_at": datetime.now(UTC).isoformat(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / CHECKPOINT).write_text(note, encoding="utf-8")
    notes = session.scalars(select(AuditCheckpoint.note).order_by(AuditCheckpoint.id)).all()
    with (out / CHECKPOINTS).open("w", encoding="utf-8") as fh:
        for n in notes:
            fh.write(json.dumps({"note": n}, ensure_ascii=False) + "\n")
    (out / PUBLIC_KEY).write_text(service.public_key(session) + "\n", encoding="ascii")
    return count


def export(
    session: Session,
    *,
    out: Path,
    home: Path,
    signing_key: SignerKey | None = None,
    sign: bool = True,
) -> dict[str, int | str]:
    """Export the hot log with the latest checkpoint (signed now when ``sign``)."""
    if sign:
        cp = service.sign_checkpoint(session, home=home, signing_key=signing_key)
    else:
        cp = service.get_checkpoint(session)
    begin = hot_begin(session)
    count = _write_dir(
        session,
        out=out,
        begin=begin,
        end=None,
        checkpoint_size=cp.size,
        note=cp.note,
        origin=cp.origin,
    )
    return {"entries": count, "begin": begin, "tree_size": cp.size, "root_hash": cp.root_hash}


def archive(
    session: Session,
    *,
    before: int,
    out: Path,
    home: Path,
    signing_key: SignerKey | None = None,
) -> ArchiveRead:
    """Move entries ``[hot begin, before)`` into an export directory and out of the database.

    Their leaf hashes stay in ``audit_nodes`` (level 0), so every root and proof remains
    computable and what remains keeps verifying against the same checkpoints.
    """
    size, _ = tree.lock_head(session)
    begin = hot_begin(session)
    if not begin < before <= size:
        raise ProofError(f"audit archive: 'before' must be in ({begin}, {size}], got {before}")
    cp = service.sign_checkpoint(session, home=home, signing_key=signing_key)
    _write_dir(
        session,
        out=out,
        begin=begin,
        end=before,
        checkpoint_size=cp.size,
        note=cp.note,
        origin=cp.origin,
    )
    moved = select(literal(0, SmallInteger()), AuditEntry.seq, AuditEntry.leaf_hash).where(
        AuditEntry.seq >= begin, AuditEntry.seq < before
    )
    session.execute(insert(AuditNode).from_select(["level", "idx", "hash"], moved))
    session.execute(delete(AuditEntry).where(AuditEntry.seq < before))
    row = AuditArchive(
        begin=begin,
        end=before,
        location=str(out),
        checkpoint_size=cp.size,
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    return ArchiveRead(begin=begin, end=before, location=str(out), checkpoint_size=cp.size)


def proof_bundle(
    session: Session, *, seq: int, checkpoint_note: str | None = None
) -> dict[str, object]:
    """Entry ``seq`` with its inclusion proof against a checkpoint (default: the latest)."""
    if checkpoint_note is not None:
        size = SignedCheckpoint.parse(checkpoint_note).checkpoint.size
    else:
        cp = service.get_checkpoint(session)
        size, checkpoint_note = cp.size, cp.note
    proof = service.inclusion_proof(session, seq=seq, tree_size=size)
    row = session.get(AuditEntry, seq)
    if row is None:
        raise ExportError(f"audit entry {seq}: not in the hot log (archived?)")
    return {
        "format": BUNDLE_FORMAT,
        "seq": seq,
        "tree_size": size,
        "entry": bytes(row.data).decode(),
        "proof": proof.hashes,
        "checkpoint": checkpoint_note,
    }
