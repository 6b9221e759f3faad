"""Signing key files: ``$VIGIL_HOME/keys/audit-<key id>.key``, mode 0600, one per key.

The database records which key id is active; the private key never enters the database. A key
may instead be supplied by configuration (the text ``PRIVATE+KEY+...`` or a path to a file
holding it), e.g. from a secret store.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from vigil.ledger.checkpoint import SignerKey
from vigil.ledger.errors import SigningKeyError

KEY_DIR_NAME = "keys"


def key_dir(home: Path) -> Path:
    return home / KEY_DIR_NAME


def key_path(home: Path, key_id_hex: str) -> Path:
    return key_dir(home) / f"audit-{key_id_hex}.key"


def write_private_key(path: Path, key: SignerKey) -> None:
    """Create ``path`` with mode 0600 (never overwrites) and write the key to it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(f"{path}: already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.encode() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_private_key(path: Path) -> SignerKey:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SigningKeyError(f"{path}: signing key file not found") from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SigningKeyError(f"{path}: permissions {oct(mode & 0o777)} are too open; chmod 600")
    try:
        return SignerKey.parse(path.read_text(encoding="ascii"))
    except SigningKeyError as exc:
        raise SigningKeyError(f"{path}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"{path}: unreadable ({exc})") from None


def parse_configured_key(value: str) -> SignerKey:
    """A key from configuration: the ``PRIVATE+KEY+...`` text itself, or a path to a key file."""
    text = value.strip()
    if text.startswith("PRIVATE+KEY+"):
        return SignerKey.parse(text)
    return read_private_key(Path(text))


def load_signer(home: Path, key_id_hex: str, supplied: SignerKey | None = None) -> SignerKey:
    """The private key for the active key id: the supplied one if it matches, else its file."""
    if supplied is not None:
        if supplied.key_id.hex() != key_id_hex:
            raise SigningKeyError(
                f"supplied signing key {supplied.key_id.hex()} is not the log's active key "
                f"{key_id_hex}"
            )
        return supplied
    key = read_private_key(key_path(home, key_id_hex))
    if key.key_id.hex() != key_id_hex:
        raise SigningKeyError(f"{key_path(home, key_id_hex)}: holds key {key.key_id.hex()}")
    return key
