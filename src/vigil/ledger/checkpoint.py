"""Signed notes (c2sp.org/signed-note) and checkpoints (c2sp.org/tlog-checkpoint), Ed25519 keys.

Key encodings follow Go's ``golang.org/x/mod/sumdb/note`` so keys interoperate with the
transparency-dev tooling:

* verifier key: ``<name>+<hex key id>+<base64(0x01 || 32-byte public key)>``
* signer key:   ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || 32-byte seed)>``

with ``key id = SHA-256(name || 0x0A || 0x01 || public key)[:4]``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vigil.ledger.errors import NoteError, SigningKeyError
from vigil.ledger.merkle import HASH_SIZE

SIG_TYPE_ED25519 = 0x01
EM_DASH = "\u2014"
ROTATION_EXTENSION = "vigil-key-rotation"
"""Extension line announcing a new key: ``vigil-key-rotation <old vkey> <new vkey>``."""

_BAD_NAME = re.compile(r"[\s+]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what}: not valid base64") from None


def check_key_name(name: str) -> str:
    if not name or _BAD_NAME.search(name):
        raise NoteError(f"key name {name!r}: must be non-empty, without spaces or '+'")
    return name


def compute_key_id(name: str, public: bytes) -> bytes:
    data = name.encode() + b"\n" + bytes([SIG_TYPE_ED25519]) + public
    return hashlib.sha256(data).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A public Ed25519 note key."""

    name: str
    key_id: bytes
    public: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError(f"verifier key {text.strip()[:60]!r}: expected name+id+key")
        name, hex_id, b64 = parts
        check_key_name(name)
        raw = _b64decode(b64, f"verifier key {name!r}")
        if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
            raise NoteError(f"verifier key {name!r}: not an Ed25519 key")
        public = raw[1:]
        key_id = compute_key_id(name, public)
        if hex_id != key_id.hex():
            raise NoteError(f"verifier key {name!r}: key id {hex_id} does not match the key")
        return cls(name, key_id, public)

    def encode(self) -> str:
        raw = bytes([SIG_TYPE_ED25519]) + self.public
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    @property
    def hex_id(self) -> str:
        return self.key_id.hex()

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class SignerKey:
    """A private Ed25519 note key (keep it in a 0600 file or a secret store)."""

    name: str
    key_id: bytes
    seed: bytes

    @classmethod
    def generate(cls, name: str) -> SignerKey:
        check_key_name(name)
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes_raw()
        public = private.public_key().public_bytes_raw()
        return cls(name, compute_key_id(name, public), seed)

    @classmethod
    def parse(cls, text: str) -> SignerKey:
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise SigningKeyError("signing key: expected PRIVATE+KEY+name+id+key")
        _, _, name, hex_id, b64 = parts
        try:
            check_key_name(name)
            raw = _b64decode(b64, f"signing key {name!r}")
        except NoteError as exc:
            raise SigningKeyError(str(exc)) from None
        if len(raw) != 33 or raw[0] != SIG_TYPE_ED25519:
            raise SigningKeyError(f"signing key {name!r}: not an Ed25519 key")
        seed = raw[1:]
        public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
        key = cls(name, compute_key_id(name, public.public_bytes_raw()), seed)
        if hex_id != key.key_id.hex():
            raise SigningKeyError(f"signing key {name!r}: key id {hex_id} does not match the key")
        return key

    @property
    def public(self) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()

    def encode(self) -> str:
        raw = bytes([SIG_TYPE_ED25519]) + self.seed
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{base64.b64encode(raw).decode()}"

    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.key_id, self.public)

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        blob = base64.b64encode(self.key_id + self.signature).decode()
        return f"{EM_DASH} {self.name} {blob}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[NoteSignature, ...]

    def encode(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def sign_note(text: str, signers: Sequence[SignerKey]) -> str:
    """Sign ``text`` (which must end in a newline) with every key in ``signers``."""
    if not text.endswith("\n") or _CONTROL.search(text):
        raise NoteError("note text: must end with a newline and hold no control characters")
    message = text.encode()
    sigs = tuple(NoteSignature(s.name, s.key_id, s.sign(message)) for s in signers)
    return Note(text, sigs).encode()


def parse_note(data: str) -> Note:
    """Split a signed note into its text and signature lines (nothing verified yet)."""
    if _CONTROL.search(data):
        raise NoteError("signed note: holds control characters other than newline")
    split = data.rfind("\n\n")
    if split < 0 or not data.endswith("\n"):
        raise NoteError("signed note: no blank line between text and signatures")
    text, sig_block = data[: split + 1], data[split + 2 :]
    sigs: list[NoteSignature] = []
    for n, line in enumerate(sig_block.splitlines(), 1):
        if not line.startswith(EM_DASH + " "):
            raise NoteError(f"signed note: signature line {n} does not start with an em dash")
        fields = line[2:].split(" ")
        if len(fields) != 2:
            raise NoteError(f"signed note: signature line {n} is malformed")
        name, blob = fields
        raw = _b64decode(blob, f"signed note: signature line {n}")
        if len(raw) < 5:
            raise NoteError(f"signed note: signature line {n} is too short")
        sigs.append(NoteSignature(check_key_name(name), raw[:4], raw[4:]))
    if not sigs:
        raise NoteError("signed note: no signature lines")
    return Note(text, tuple(sigs))


def verified_keys(note: Note, keys: Iterable[VerifierKey]) -> list[VerifierKey]:
    """The known keys that signed ``note``; a bad signature by a known key rejects the note."""
    known = {(k.name, k.key_id): k for k in keys}
    message = note.text.encode()
    good: list[VerifierKey] = []
    for sig in note.signatures:
        key = known.get((sig.name, sig.key_id))
        if key is None:
            continue  # unknown keys are ignored (signed-note spec)
        if not key.verify(message, sig.signature):
            raise NoteError(f"signed note: signature by {key.name}+{key.hex_id} does not verify")
        good.append(key)
    return good


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "" or any(not ln for ln in lines[:-1]):
            raise NoteError("checkpoint: expected origin, size and root lines, none empty")
        origin, size_s, root_b64, *ext = lines[:-1]
        if not size_s.isdigit() or (size_s.startswith("0") and size_s != "0"):
            raise NoteError(f"checkpoint {origin}: tree size {size_s!r} is not a decimal")
        root = _b64decode(root_b64, f"checkpoint {origin}: root hash")
        if len(root) != HASH_SIZE:
            raise NoteError(f"checkpoint {origin}: root hash is not 32 bytes")
        return cls(origin, int(size_s), root, tuple(ext))

    def rotation(self) -> tuple[VerifierKey, VerifierKey] | None:
        """``(old, new)`` if this checkpoint announces a key rotation."""
        for line in self.extensions:
            fields = line.split(" ")
            if fields[0] == ROTATION_EXTENSION:
                if len(fields) != 3:
                    raise NoteError(f"checkpoint {self.origin}@{self.size}: bad rotation line")
                return VerifierKey.parse(fields[1]), VerifierKey.parse(fields[2])
        return None


@dataclass(frozen=True)
class SignedCheckpoint:
    checkpoint: Checkpoint
    note: Note

    @classmethod
    def parse(cls, data: str) -> SignedCheckpoint:
        note = parse_note(data)
        return cls(Checkpoint.parse(note.text), note)

    def encode(self) -> str:
        return self.note.encode()


def sign_checkpoint(checkpoint: Checkpoint, signers: Sequence[SignerKey]) -> SignedCheckpoint:
    data = sign_note(checkpoint.text(), signers)
    return SignedCheckpoint(checkpoint, parse_note(data))
