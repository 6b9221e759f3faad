"""The ledger on a real database (SQLite and PostgreSQL): appends, checkpoints, proofs, keys."""

from __future__ import annotations

import base64
import json
import stat
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from tests.ledger import reference
from tests.ledger.conftest import ORIGIN, Ledger
from vigil.ledger import export, merkle, service
from vigil.ledger.checkpoint import SignedCheckpoint, SignerKey, VerifierKey, verified_keys
from vigil.ledger.errors import InconsistentCheckpointError, ProofError, SigningKeyError
from vigil.ledger.keys import key_path
from vigil.ledger.models import AuditEntry, AuditNode
from vigil.ledger.verify import verify_bundle, verify_export
from vigil.store import session_scope


def _leaf_inputs(ledger: Ledger) -> list[bytes]:
    with session_scope(ledger.factory) as s:
        return [bytes(d) for d in s.scalars(select(AuditEntry.data).order_by(AuditEntry.seq))]


def _b(text_: str) -> bytes:
    return base64.b64decode(text_)


def test_append_assigns_sequence_and_canonical_json(ledger: Ledger) -> None:
    with session_scope(ledger.factory) as s:
        e0 = service.append(
            s, tenant="acme", actor="user:1", action="key.create", target="key:9", change={"a": 1}
        )
        e1 = service.append(
            s, tenant="acme", actor="key:7", action="rule.delete", target="rule:1", request_id="r"
        )
    assert (e0.seq, e1.seq) == (0, 1)
    assert e0.canonical.startswith('{"action":"key.create","actor":"user:1","change_digest"')
    assert _b(e0.leaf_hash) == merkle.leaf_hash(e0.canonical.encode())
    with session_scope(ledger.factory) as s:
        assert service.get_entry(s, seq=1).request_id == "r"
        assert service.tree_size(s) == 2


def test_root_matches_reference_and_nodes_are_log_n(ledger: Ledger) -> None:
    for batch in (1, 2, 5, 13, 1, 40):
        ledger.add(batch)
    leaves = _leaf_inputs(ledger)
    n = len(leaves)
    with session_scope(ledger.factory) as s:
        for size in (0, 1, 2, 3, 8, 21, n):
            assert service.root_hash(s, size=size) == reference.mth(leaves[:size])
        stored = s.scalar(select(func.count()).select_from(AuditNode))
    # perfect subtrees of height >= 1 in a tree of n leaves: n - popcount(n)
    assert stored == n - bin(n).count("1")


def test_proofs_verify_against_signed_checkpoint(ledger: Ledger) -> None:
    ledger.add(37)
    note = ledger.sign()
    cp = SignedCheckpoint.parse(note).checkpoint
    leaves = _leaf_inputs(ledger)
    with session_scope(ledger.factory) as s:
        for seq in (0, 1, 17, 36):
            p = service.inclusion_proof(s, seq=seq)
            hashes = [_b(h) for h in p.hashes]
            assert hashes == reference.path(seq, leaves)
            assert merkle.verify_inclusion(seq, 37, _b(p.leaf_hash), hashes, cp.root)
        with pytest.raises(ProofError, match="not in a tree of size 37"):
            service.inclusion_proof(s, seq=37)


def test_saved_checkpoint_stays_consistent_after_more_appends(ledger: Ledger) -> None:
    ledger.add(11)
    saved = SignedCheckpoint.parse(ledger.sign())
    for n in (1, 7, 64, 3):
        ledger.add(n)
    latest = SignedCheckpoint.parse(ledger.sign())
    assert latest.checkpoint.size == 11 + 75
    with session_scope(ledger.factory) as s:
        proof = service.consistency_proof(s, old_size=saved.checkpoint.size)
        assert proof.new_size == latest.checkpoint.size
        hashes = [_b(h) for h in proof.hashes]
        assert hashes == reference.proof(11, _leaf_inputs(ledger))
        assert merkle.verify_consistency(
            11, latest.checkpoint.size, hashes, saved.checkpoint.root, latest.checkpoint.root
        )
        assert len(service.list_checkpoints(s)) == 2


def test_checkpoint_is_reused_until_the_log_grows(ledger: Ledger) -> None:
    ledger.add(3)
    assert ledger.sign() == ledger.sign()
    ledger.add(1)
    with session_scope(ledger.factory) as s:
        assert service.get_checkpoint(s).size == 3
    assert SignedCheckpoint.parse(ledger.sign()).checkpoint.size == 4


def test_refuses_to_sign_inconsistent_checkpoint(ledger: Ledger) -> None:
    ledger.add(8)
    ledger.sign()
    ledger.add(3)
    with session_scope(ledger.factory) as s:  # rewrite history under the signed checkpoint
        s.execute(
            text("UPDATE audit_nodes SET hash = :h WHERE level = 3 AND idx = 0"), {"h": b"x" * 32}
        )
    with session_scope(ledger.factory) as s, pytest.raises(InconsistentCheckpointError):
        service.sign_checkpoint(s, home=ledger.home)


def test_key_file_is_private_and_must_stay_so(ledger: Ledger) -> None:
    with session_scope(ledger.factory) as s:
        (key,) = service.list_keys(s)
    path = key_path(ledger.home, key.key_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.vkey.startswith(ORIGIN + "+" + key.key_id + "+")
    path.chmod(0o644)
    ledger.add(1)
    with session_scope(ledger.factory) as s, pytest.raises(SigningKeyError, match="too open"):
        service.sign_checkpoint(s, home=ledger.home)


def test_supplied_key_must_be_the_active_one(ledger: Ledger) -> None:
    ledger.add(1)
    with session_scope(ledger.factory) as s, pytest.raises(SigningKeyError, match="not the log"):
        service.sign_checkpoint(s, home=ledger.home, signing_key=SignerKey.generate(ORIGIN))


def test_rotation_keeps_old_checkpoints_verifiable(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add(5)
    old_note = ledger.sign()
    with session_scope(ledger.factory) as s:
        old_vkey = VerifierKey.parse(service.public_key(s))
        rot = service.rotate_key(s, home=ledger.home, actor="user:admin")
        new_vkey = VerifierKey.parse(service.public_key(s))
    assert old_vkey != new_vkey
    rotation = SignedCheckpoint.parse(rot.note)
    assert rotation.checkpoint.rotation() == (old_vkey, new_vkey)
    assert len(verified_keys(rotation.note, [old_vkey, new_vkey])) == 2
    ledger.add(4)
    latest = SignedCheckpoint.parse(ledger.sign())
    assert verified_keys(latest.note, [new_vkey]) and not verified_keys(latest.note, [old_vkey])
    with session_scope(ledger.factory) as s:
        export.export(s, out=tmp_path / "x", home=ledger.home)
    for trusted in ([old_vkey], [new_vkey]):
        report = verify_export(tmp_path / "x", trusted_keys=trusted, saved_checkpoints=[old_note])
        assert report.ok, report.problems
    stranger = SignerKey.generate(ORIGIN).verifier()
    assert not verify_export(tmp_path / "x", trusted_keys=[stranger]).ok


def test_list_entries_pages_and_filters(ledger: Ledger) -> None:
    ledger.add(5, tenant="a")
    ledger.add(4, start=5, tenant="b")
    with session_scope(ledger.factory) as s:
        page = service.list_entries(s, tenant="a", limit=2)
        assert [e.seq for e in page.items] == [0, 1] and page.next_after == 1
        page = service.list_entries(s, tenant="a", after_seq=page.next_after, limit=10)
        assert [e.seq for e in page.items] == [2, 3, 4] and page.next_after is None
        assert len(service.list_entries(s, tenant="b").items) == 4


def test_single_entry_bundle_against_saved_checkpoint(ledger: Ledger) -> None:
    ledger.add(9)
    saved = ledger.sign()
    ledger.add(30, start=9)
    ledger.sign()
    with session_scope(ledger.factory) as s:
        bundle = export.proof_bundle(s, seq=4, checkpoint_note=saved)
        key = VerifierKey.parse(service.public_key(s))
    assert bundle["tree_size"] == 9
    assert verify_bundle(bundle, trusted_keys=[key]).ok
    bad = dict(bundle, entry=str(bundle["entry"]).replace("rule:4", "rule:5"))
    report = verify_bundle(bad, trusted_keys=[key])
    assert not report.ok and report.first_bad_seq == 4


def test_archive_keeps_the_rest_verifiable(ledger: Ledger, tmp_path: Path) -> None:
    ledger.add(30)
    early = ledger.sign()
    with session_scope(ledger.factory) as s:
        done = export.archive(s, before=13, out=tmp_path / "arch", home=ledger.home)
        key = VerifierKey.parse(service.public_key(s))
    assert (done.begin, done.end) == (0, 13)
    with session_scope(ledger.factory) as s:
        assert s.scalar(select(func.min(AuditEntry.seq))) == 13
        # proofs still work, also for archived entries (their leaf hashes stayed)
        for seq in (3, 12, 13, 29):
            p = service.inclusion_proof(s, seq=seq)
            root = SignedCheckpoint.parse(early).checkpoint.root
            assert merkle.verify_inclusion(
                seq, 30, _b(p.leaf_hash), [_b(h) for h in p.hashes], root
            )
    assert verify_export(tmp_path / "arch", trusted_keys=[key]).ok
    ledger.add(7, start=30)
    with session_scope(ledger.factory) as s:
        export.export(s, out=tmp_path / "hot", home=ledger.home)
    report = verify_export(tmp_path / "hot", trusted_keys=[key], saved_checkpoints=[early])
    assert report.ok, report.problems
    assert (report.begin, report.entries, report.tree_size) == (13, 24, 37)
    with session_scope(ledger.factory) as s:  # a second archive continues where the first ended
        again = export.archive(s, before=20, out=tmp_path / "arch2", home=ledger.home)
    assert (again.begin, again.end) == (13, 20)
    assert verify_export(tmp_path / "arch2", trusted_keys=[key]).ok


def test_concurrent_appenders_produce_one_valid_log(ledger: Ledger, tmp_path: Path) -> None:
    def worker(name: str) -> None:
        for i in range(25):
            with session_scope(ledger.factory) as s:
                service.append(s, tenant="acme", actor=name, action="x.y", target=f"t:{i}")

    threads = [threading.Thread(target=worker, args=(f"user:{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leaves = _leaf_inputs(ledger)
    assert len(leaves) == 100
    assert [json.loads(d)["seq"] for d in leaves] == list(range(100))
    with session_scope(ledger.factory) as s:
        assert service.root_hash(s) == reference.mth(leaves)
        export.export(s, out=tmp_path / "x", home=ledger.home)
    assert verify_export(tmp_path / "x").ok
