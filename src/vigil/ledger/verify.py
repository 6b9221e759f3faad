"""Offline verification of an export directory or a single-entry proof bundle. No database.

Trust comes from the verifier key(s) given by the caller (``--public-key``); without them the key
shipped in the export is used, which only proves self-consistency (the report says so). Key
rotations are followed through the checkpoint history: a checkpoint carrying
``vigil-key-rotation <old> <new>`` and signed by a trusted key makes the other key trusted; after
a rotation the old key may no longer sign alone.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.ledger import merkle
from vigil.ledger.checkpoint import SignedCheckpoint, VerifierKey, verified_keys
from vigil.ledger.entry import EntryError, decode_entry
from vigil.ledger.errors import ExportError, LedgerError
from vigil.ledger.export import (
    BUNDLE_FORMAT,
    CHECKPOINT,
    CHECKPOINTS,
    ENTRIES,
    EXPORT_FORMAT,
    LEAF_HASHES,
    MANIFEST,
    PUBLIC_KEY,
)


@dataclass
class VerifyReport:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    first_bad_seq: int | None = None
    entries: int = 0
    begin: int = 0
    tree_size: int = 0
    root_hash: str = ""
    trusted_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, message: str, seq: int | None = None) -> None:
        self.ok = False
        self.problems.append(message)
        if seq is not None and self.first_bad_seq is None:
            self.first_bad_seq = seq


def read_verifier_keys(path: Path) -> list[VerifierKey]:
    """Verifier keys from a file, one per line (blank lines and ``#`` comments ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read public key ({exc})") from None
    out = [VerifierKey.parse(ln) for ln in lines if ln.strip() and not ln.startswith("#")]
    if not out:
        raise ExportError(f"{path}: no verifier key in the file")
    return out


def _b64list(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise ExportError(f"{what}: expected a list of base64 hashes")
    try:
        out = [base64.b64decode(v, validate=True) for v in values]
    except (binascii.Error, TypeError, ValueError):
        raise ExportError(f"{what}: not base64") from None
    if any(len(h) != merkle.HASH_SIZE for h in out):
        raise ExportError(f"{what}: every hash must be 32 bytes")
    return out


class _KeyChain:
    """Trusted keys, grown by rotation announcements signed by trusted keys."""

    def __init__(self, trusted: Sequence[VerifierKey], history: Sequence[SignedCheckpoint]):
        self.trusted: dict[tuple[str, bytes], VerifierKey] = {
            (k.name, k.key_id): k for k in trusted
        }
        self.retired: set[tuple[str, bytes]] = set()
        rotations = [(c, r) for c in history if (r := c.checkpoint.rotation()) is not None]
        changed = True
        while changed:  # trust spreads both ways across rotations the trusted keys signed
            changed = False
            for cp, (old, new) in rotations:
                both = [old, new]
                try:
                    if not verified_keys(cp.note, [k for k in both if self._known(k)]):
                        continue
                    if len(verified_keys(cp.note, both)) != 2:
                        continue  # a rotation must be signed by both keys
                except LedgerError:
                    continue  # reported when the checkpoint itself is checked
                for k in both:
                    if not self._known(k):
                        self.trusted[(k.name, k.key_id)] = k
                        changed = True

    def _known(self, key: VerifierKey) -> bool:
        return (key.name, key.key_id) in self.trusted

    def check(self, cp: SignedCheckpoint) -> list[VerifierKey]:
        """Keys that validly signed ``cp``; a rotation retires its old key afterwards."""
        good = verified_keys(cp.note, list(self.trusted.values()))
        current = [k for k in good if (k.name, k.key_id) not in self.retired]
        rotation = cp.checkpoint.rotation()
        if rotation is not None and current:
            self.retired.add((rotation[0].name, rotation[0].key_id))
        return current


def _load_history(directory: Path, report: VerifyReport) -> list[SignedCheckpoint]:
    path = directory / CHECKPOINTS
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            out.append(SignedCheckpoint.parse(json.loads(line)["note"]))
        except (LedgerError, ValueError, KeyError, TypeError) as exc:
            report.fail(f"{CHECKPOINTS} line {n}: unreadable checkpoint ({exc})")
    return out


def _check_checkpoints(
    history: Sequence[SignedCheckpoint],
    latest: SignedCheckpoint,
    chain: _KeyChain,
    origin: str,
    report: VerifyReport,
) -> None:
    last_size = -1
    roots: dict[int, bytes] = {}
    for i, cp in enumerate([*history, latest], 1):
        c = cp.checkpoint
        label = "checkpoint.txt" if i > len(history) else f"checkpoint #{i} (size {c.size})"
        try:
            signers = chain.check(cp)
        except LedgerError as exc:
            report.fail(f"{label}: {exc}")
            continue
        if not signers:
            report.fail(f"{label}: not signed by a trusted (unretired) key")
        if c.origin != origin:
            report.fail(f"{label}: origin {c.origin!r} is not the log's origin {origin!r}")
        if i <= len(history) and c.size < last_size:
            report.fail(f"{label}: tree size went backwards from {last_size}")
        if roots.setdefault(c.size, c.root) != c.root:
            report.fail(f"{label}: a different root was signed for size {c.size}")
        last_size = max(last_size, c.size)
    if history and history[-1].encode() != latest.encode():
        report.fail("checkpoint.txt: is not the last checkpoint in the history")


def verify_export(
    directory: Path,
    *,
    trusted_keys: Sequence[VerifierKey] | None = None,
    saved_checkpoints: Sequence[str] = (),
) -> VerifyReport:
    """Recompute everything in an export; ``ok`` only if the log is intact and trusted."""
    report = VerifyReport()
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        latest = SignedCheckpoint.parse((directory / CHECKPOINT).read_text(encoding="utf-8"))
        if manifest.get("format") != EXPORT_FORMAT:
            raise ExportError(f"{MANIFEST}: unknown format {manifest.get('format')!r}")
        origin, begin, end = manifest["origin"], int(manifest["begin"]), int(manifest["end"])
        base = _b64list(manifest["base"], f"{MANIFEST} base")
        tail = _b64list(manifest["tail_proof"], f"{MANIFEST} tail_proof")
        if trusted_keys is None:
            trusted_keys = read_verifier_keys(directory / PUBLIC_KEY)
            report.notes.append(
                "trusting the public key shipped inside the export; pass --public-key to check "
                "against a key you obtained independently"
            )
        edge = merkle.CompactRange.from_hashes(0, begin, base)
    except (OSError, ValueError, KeyError, TypeError, LedgerError) as exc:
        report.fail(f"export {directory}: unreadable ({exc})")
        return report
    report.begin, report.tree_size = begin, latest.checkpoint.size
    report.root_hash = base64.b64encode(latest.checkpoint.root).decode()
    report.trusted_keys = [k.encode() for k in trusted_keys]
    history = _load_history(directory, report)
    chain = _KeyChain(trusted_keys, history)
    _check_checkpoints(history, latest, chain, origin, report)
    saved = []
    for text in saved_checkpoints:
        try:
            cp = SignedCheckpoint.parse(text)
            if not verified_keys(cp.note, list(chain.trusted.values())):
                report.fail(f"saved checkpoint (size {cp.checkpoint.size}): no trusted signature")
            saved.append(cp.checkpoint)
        except LedgerError as exc:
            report.fail(f"saved checkpoint: {exc}")
    if begin > end or end > latest.checkpoint.size:
        report.fail(f"{MANIFEST}: range [{begin}, {end}) does not fit the checkpoint")
        return report
    # Sizes whose root we must compare while streaming: every signed or saved checkpoint.
    expect: dict[int, list[tuple[str, bytes]]] = {}
    for i, cp in enumerate(history, 1):
        expect.setdefault(cp.checkpoint.size, []).append((f"checkpoint #{i}", cp.checkpoint.root))
    for c in saved:
        expect.setdefault(c.size, []).append((f"saved checkpoint {c.size}", c.root))
        if c.size < begin:
            report.notes.append(f"saved checkpoint {c.size}: precedes the exported range")
        elif c.size > latest.checkpoint.size:
            report.fail(f"saved checkpoint {c.size}: is newer than the export's checkpoint")
    last_good = begin
    for label, root in expect.get(begin, []) if begin else []:
        if edge.root() != root:
            report.fail(f"{MANIFEST} base: does not match {label}", begin)
    _stream_entries(directory, edge, begin, end, expect, report)
    if report.first_bad_seq is not None:
        return report
    last_good = end
    root_end = edge.root() if end else merkle.EMPTY_ROOT
    if not merkle.verify_consistency(
        end, latest.checkpoint.size, tail, root_end, latest.checkpoint.root
    ):
        report.fail(
            f"entries [{begin}, {last_good}): their tree does not match the signed checkpoint "
            f"(size {latest.checkpoint.size}); the first bad entry is in this range",
            begin,
        )
    return report


def _stream_entries(
    directory: Path,
    edge: merkle.CompactRange,
    begin: int,
    end: int,
    expect: dict[int, list[tuple[str, bytes]]],
    report: VerifyReport,
) -> None:
    hints_path = directory / LEAF_HASHES
    hints = hints_path.read_text(encoding="ascii").split() if hints_path.exists() else None
    if hints is None:
        report.notes.append(f"{LEAF_HASHES} absent: a changed entry is found by range only")
    checked_until = begin
    try:
        fh = (directory / ENTRIES).open("rb")
    except OSError as exc:
        report.fail(f"{ENTRIES}: cannot read ({exc})", begin)
        return
    with fh:
        for pos, raw in enumerate(fh):
            seq = begin + pos
            data = raw[:-1] if raw.endswith(b"\n") else raw
            if seq >= end:
                report.fail(
                    f"entry {seq}: present but beyond the signed tree (size {end}): inserted", seq
                )
                return
            try:
                entry = decode_entry(data, where=f"entry {seq} ({ENTRIES} line {pos + 1})")
            except EntryError as exc:
                report.fail(str(exc), seq)
                return
            if entry.seq != seq:
                report.fail(
                    f"entry {seq}: line {pos + 1} holds seq {entry.seq} "
                    "(entries deleted, reordered or inserted)",
                    seq,
                )
                return
            leaf = merkle.leaf_hash(data)
            if hints is not None and (pos >= len(hints) or hints[pos] != leaf.hex()):
                report.fail(f"entry {seq}: content does not match its recorded leaf hash", seq)
                return
            edge.append(leaf)
            report.entries += 1
            for label, root in expect.get(edge.end, []):
                if edge.root() != root:
                    report.fail(
                        f"entries [{checked_until}, {edge.end}): do not match {label}; the first "
                        f"bad entry is in this range",
                        checked_until,
                    )
                    return
            if edge.end in expect:
                checked_until = edge.end
    if edge.end < end:
        report.fail(f"entry {edge.end}: missing ({ENTRIES} ends early)", edge.end)


def verify_bundle(
    bundle: dict[str, Any],
    *,
    trusted_keys: Sequence[VerifierKey],
    checkpoint_text: str | None = None,
) -> VerifyReport:
    """Verify one entry and its inclusion proof against a (saved) signed checkpoint."""
    report = VerifyReport(trusted_keys=[k.encode() for k in trusted_keys])
    try:
        if bundle.get("format") != BUNDLE_FORMAT:
            raise ExportError(f"proof bundle: unknown format {bundle.get('format')!r}")
        seq, size = int(bundle["seq"]), int(bundle["tree_size"])
        data = str(bundle["entry"]).encode()
        proof = _b64list(bundle["proof"], "proof bundle proof")
        text = checkpoint_text if checkpoint_text is not None else str(bundle["checkpoint"])
        cp = SignedCheckpoint.parse(text)
        entry = decode_entry(data, where=f"entry {seq}")
    except (ValueError, KeyError, TypeError, LedgerError) as exc:
        report.fail(f"proof bundle: unreadable ({exc})")
        return report
    report.tree_size, report.entries = cp.checkpoint.size, 1
    report.root_hash = base64.b64encode(cp.checkpoint.root).decode()
    try:
        if not verified_keys(cp.note, trusted_keys):
            report.fail("checkpoint: not signed by a trusted key")
    except LedgerError as exc:
        report.fail(f"checkpoint: {exc}")
    if entry.seq != seq:
        report.fail(f"entry {seq}: holds seq {entry.seq}", seq)
    if cp.checkpoint.size != size:
        report.fail(f"proof is for tree size {size}, the checkpoint has {cp.checkpoint.size}")
    elif not merkle.verify_inclusion(seq, size, merkle.leaf_hash(data), proof, cp.checkpoint.root):
        report.fail(f"entry {seq}: inclusion proof does not lead to the checkpoint root", seq)
    return report
