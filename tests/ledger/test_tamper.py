"""Tampering with the database or with an export: verification must catch every change."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from tests.ledger.conftest import ORIGIN, Ledger
from vigil.ledger import export, merkle, service
from vigil.ledger.checkpoint import SignedCheckpoint, SignerKey, VerifierKey, sign_checkpoint
from vigil.ledger.errors import LedgerError
from vigil.ledger.verify import VerifyReport, verify_export
from vigil.store import session_scope

SIZE = 20


def _prepare(ledger: Ledger) -> VerifierKey:
    ledger.add(10)
    ledger.sign()
    ledger.add(SIZE - 10, start=10)
    ledger.sign()
    with session_scope(ledger.factory) as s:
        return VerifierKey.parse(service.public_key(s))


def _export_and_verify(ledger: Ledger, out: Path, key: VerifierKey) -> VerifyReport:
    with session_scope(ledger.factory) as s:
        try:
            export.export(s, out=out, home=ledger.home)
        except LedgerError:  # refusing to sign is itself detection; export what was signed
            s.rollback()
            export.export(s, out=out, home=ledger.home, sign=False)
    return verify_export(out, trusted_keys=[key])


def _data(s: Session, seq: int) -> bytes:
    return bytes(
        s.execute(text("SELECT data FROM audit_entries WHERE seq = :s"), {"s": seq}).one()[0]
    )


def _edit(s: Session) -> None:
    data = _data(s, 7).replace(b"user:1", b"user:2")
    s.execute(text("UPDATE audit_entries SET data = :d WHERE seq = 7"), {"d": data})


def _edit_with_hash(s: Session) -> None:
    data = _data(s, 7).replace(b"user:1", b"user:2")
    s.execute(
        text("UPDATE audit_entries SET data = :d, leaf_hash = :h WHERE seq = 7"),
        {"d": data, "h": merkle.leaf_hash(data)},
    )


def _delete(s: Session) -> None:
    s.execute(text("DELETE FROM audit_entries WHERE seq = 7"))


def _reorder(s: Session) -> None:
    a, b = _data(s, 3), _data(s, 4)
    s.execute(text("UPDATE audit_entries SET data = :d WHERE seq = 3"), {"d": b})
    s.execute(text("UPDATE audit_entries SET data = :d WHERE seq = 4"), {"d": a})


def _insert(s: Session) -> None:
    data = _data(s, 19).replace(b'"seq":19', f'"seq":{SIZE}'.encode())
    s.execute(
        text(
            "INSERT INTO audit_entries (seq, data, leaf_hash, tenant, actor, action, time) "
            "SELECT :n, :d, :h, tenant, actor, action, time FROM audit_entries WHERE seq = 19"
        ),
        {"n": SIZE, "d": data, "h": merkle.leaf_hash(data)},
    )


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        (_edit, 7),
        (_edit_with_hash, None),
        (_delete, 7),
        (_reorder, 3),
        (_insert, SIZE),
    ],
    ids=["edit", "edit-and-rehash", "delete", "reorder", "insert"],
)
def test_database_tampering_is_caught(
    ledger: Ledger,
    tmp_path: Path,
    tamper: Callable[[Session], None],
    first_bad: int | None,
) -> None:
    key = _prepare(ledger)
    with session_scope(ledger.factory) as s:
        tamper(s)
    report = _export_and_verify(ledger, tmp_path / "x", key)
    assert not report.ok
    if first_bad is not None:
        assert report.first_bad_seq == first_bad, report.problems
    else:  # content and leaf hash rewritten: located to the checkpoint range holding it
        assert report.first_bad_seq is not None and report.first_bad_seq <= 7, report.problems


def test_rewriting_the_whole_tree_is_refused_at_signing(ledger: Ledger, tmp_path: Path) -> None:
    key = _prepare(ledger)
    with session_scope(ledger.factory) as s:  # attacker recomputes every hash after an edit
        _edit_with_hash(s)
        s.execute(text("DELETE FROM audit_nodes"))
        rows = s.execute(text("SELECT leaf_hash FROM audit_entries ORDER BY seq")).all()
        edge = merkle.CompactRange()

        def store(level: int, idx: int, h: bytes) -> None:
            s.execute(
                text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:l, :i, :h)"),
                {"l": level, "i": idx, "h": h},
            )

        for (leaf,) in rows:
            edge.append(bytes(leaf), store)
    ledger.add(1, start=SIZE)
    with session_scope(ledger.factory) as s, pytest.raises(LedgerError, match="not consistent"):
        service.sign_checkpoint(s, home=ledger.home)
    assert not _export_and_verify(ledger, tmp_path / "x", key).ok


# --- tampering with an export ---------------------------------------------------------------------


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _rewrite(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), encoding="utf-8")


def _x_edit(d: Path) -> None:
    lines = _lines(d / "entries.jsonl")
    lines[5] = lines[5].replace("rule:5", "rule:6")
    _rewrite(d / "entries.jsonl", lines)


def _x_edit_both(d: Path) -> None:
    lines, hashes = _lines(d / "entries.jsonl"), _lines(d / "leaf_hashes.txt")
    lines[5] = lines[5].replace("rule:5", "rule:6")
    hashes[5] = merkle.leaf_hash(lines[5].rstrip("\n").encode()).hex() + "\n"
    _rewrite(d / "entries.jsonl", lines)
    _rewrite(d / "leaf_hashes.txt", hashes)


def _x_delete(d: Path) -> None:
    for name in ("entries.jsonl", "leaf_hashes.txt"):
        lines = _lines(d / name)
        del lines[5]
        _rewrite(d / name, lines)


def _x_reorder(d: Path) -> None:
    for name in ("entries.jsonl", "leaf_hashes.txt"):
        lines = _lines(d / name)
        lines[3], lines[4] = lines[4], lines[3]
        _rewrite(d / name, lines)


def _x_insert(d: Path) -> None:
    for name in ("entries.jsonl", "leaf_hashes.txt"):
        lines = _lines(d / name)
        lines.insert(6, lines[5])
        _rewrite(d / name, lines)


def _x_append(d: Path) -> None:
    lines = _lines(d / "entries.jsonl")
    lines.append(lines[-1].replace(f'"seq":{SIZE - 1}', f'"seq":{SIZE}'))
    _rewrite(d / "entries.jsonl", lines)


def _x_truncate(d: Path) -> None:
    _rewrite(d / "entries.jsonl", _lines(d / "entries.jsonl")[:-1])


def _x_root(d: Path) -> None:
    for name in ("checkpoint.txt",):
        lines = _lines(d / name)
        lines[2] = "A" + lines[2][1:]
        _rewrite(d / name, lines)


def _x_history(d: Path) -> None:
    lines = _lines(d / "checkpoints.jsonl")
    note = json.loads(lines[0])["note"].replace(f"\n{10}\n", f"\n{11}\n")
    lines[0] = json.dumps({"note": note}) + "\n"
    _rewrite(d / "checkpoints.jsonl", lines)


def _x_resign(d: Path) -> None:  # checkpoints re-signed by a forger, whose key is shipped
    forger = SignerKey.generate(ORIGIN)
    (d / "public_key.txt").write_text(forger.verifier().encode() + "\n")
    notes = [json.loads(line)["note"] for line in _lines(d / "checkpoints.jsonl")]
    forged = [
        sign_checkpoint(SignedCheckpoint.parse(n).checkpoint, [forger]).encode() for n in notes
    ]
    _rewrite(d / "checkpoints.jsonl", [json.dumps({"note": n}) + "\n" for n in forged])
    (d / "checkpoint.txt").write_text(forged[-1])
    assert verify_export(d).ok  # self-consistent: only an independently obtained key helps


@pytest.mark.parametrize(
    ("tamper", "first_bad"),
    [
        (_x_edit, 5),
        (_x_edit_both, 0),
        (_x_delete, 5),
        (_x_reorder, 3),
        (_x_insert, 6),
        (_x_append, SIZE),
        (_x_truncate, SIZE - 1),
        (_x_root, None),
        (_x_history, None),
        (_x_resign, None),
    ],
    ids=[
        "edit-line",
        "edit-line-and-hash",
        "delete",
        "reorder",
        "insert",
        "append",
        "truncate",
        "checkpoint-root",
        "history",
        "foreign-key",
    ],
)
def test_export_tampering_is_caught(
    ledger: Ledger, tmp_path: Path, tamper: Callable[[Path], None], first_bad: int | None
) -> None:
    key = _prepare(ledger)
    out = tmp_path / "x"
    assert _export_and_verify(ledger, out, key).ok
    tamper(out)
    report = verify_export(out, trusted_keys=[key])
    assert not report.ok
    if first_bad is not None:
        assert report.first_bad_seq == first_bad, report.problems
