"""Signed notes and checkpoints: the Go sumdb/note known answer, parsing and rejection."""

from __future__ import annotations

import base64

import pytest

from vigil.ledger.checkpoint import (
    EM_DASH,
    Checkpoint,
    SignedCheckpoint,
    SignerKey,
    VerifierKey,
    compute_key_id,
    parse_note,
    sign_checkpoint,
    sign_note,
    verified_keys,
)
from vigil.ledger.entry import EntryError, canonical_json, change_digest, decode_entry
from vigil.ledger.errors import NoteError, SigningKeyError

# Known answer from golang.org/x/mod/sumdb/note (the reference implementation of signed notes).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n"
    + f"{EM_DASH} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXg"
    + "KvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_go_known_answer() -> None:
    signer = SignerKey.parse(GO_SKEY)
    assert signer.encode() == GO_SKEY
    assert signer.verifier().encode() == GO_VKEY
    assert signer.key_id.hex() == "c74f20a3"
    assert sign_note(GO_TEXT, [signer]) == GO_NOTE
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    assert verified_keys(note, [VerifierKey.parse(GO_VKEY)]) == [VerifierKey.parse(GO_VKEY)]


def test_key_id_is_sha256_of_name_newline_type_and_key() -> None:
    key = VerifierKey.parse(GO_VKEY)
    assert compute_key_id("PeterNeumann", key.public) == bytes.fromhex("c74f20a3")


def test_unknown_keys_are_ignored_and_bad_signatures_rejected() -> None:
    other = SignerKey.generate("PeterNeumann")
    assert verified_keys(parse_note(GO_NOTE), [other.verifier()]) == []
    tampered = GO_NOTE.replace("cryptography", "cryptographY")
    with pytest.raises(NoteError, match="does not verify"):
        verified_keys(parse_note(tampered), [VerifierKey.parse(GO_VKEY)])


@pytest.mark.parametrize(
    "bad",
    [
        "no blank line\n",
        GO_TEXT + "\n" + "- PeterNeumann abc=\n",
        GO_TEXT + "\n" + f"{EM_DASH} PeterNeumann !!!\n",
        GO_TEXT + "\n",
        GO_TEXT.replace("\n", "\r\n", 1) + "\n" + GO_NOTE.split("\n\n")[1],
    ],
)
def test_malformed_notes(bad: str) -> None:
    with pytest.raises(NoteError):
        parse_note(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3",
    ],
)
def test_malformed_verifier_keys(bad: str) -> None:
    with pytest.raises(NoteError):
        VerifierKey.parse(bad)


def test_malformed_signer_key() -> None:
    with pytest.raises(SigningKeyError):
        SignerKey.parse(GO_SKEY.replace("c74f20a3", "c74f20a4"))


def test_checkpoint_roundtrip_and_format() -> None:
    signer = SignerKey.generate("example.com/log")
    root = bytes(range(32))
    signed = sign_checkpoint(Checkpoint("example.com/log", 20852163, root), [signer])
    text = signed.encode()
    assert text.startswith(
        "example.com/log\n20852163\n" + base64.b64encode(root).decode() + "\n\n" + EM_DASH + " "
    )
    again = SignedCheckpoint.parse(text)
    assert again.checkpoint == Checkpoint("example.com/log", 20852163, root)
    blob = base64.b64decode(text.rsplit(" ", 1)[1])
    assert blob[:4] == signer.key_id and len(blob) == 68
    assert verified_keys(again.note, [signer.verifier()])


@pytest.mark.parametrize(
    "body",
    ["origin\n01\n" + base64.b64encode(bytes(32)).decode() + "\n", "origin\n5\nAAAA\n", "o\n5\n"],
)
def test_bad_checkpoint_bodies(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_rotation_extension() -> None:
    old, new = SignerKey.generate("log"), SignerKey.generate("log")
    line = f"vigil-key-rotation {old.verifier().encode()} {new.verifier().encode()}"
    cp = Checkpoint("log", 3, bytes(32), (line,))
    assert Checkpoint.parse(cp.text()).rotation() == (old.verifier(), new.verifier())


def test_canonical_entries() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    assert change_digest(b"abc").startswith("sha256:ba7816bf")
    with pytest.raises(EntryError):
        canonical_json({"x": float("nan")})
    good = (
        b'{"action":"a","actor":"u","change_digest":"sha256:' + b"0" * 64 + b'","request_id":null,'
        b'"seq":0,"target":"t","tenant":"x","time":"2024-01-01T00:00:00.000000Z"}'
    )
    assert decode_entry(good).canonical() == good
    with pytest.raises(EntryError, match="canonical"):
        decode_entry(good.replace(b'"seq":0', b'"seq": 0'))
    with pytest.raises(EntryError, match="keys"):
        decode_entry(b'{"seq":0}')
