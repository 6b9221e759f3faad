"""Secret formats: API keys, refresh tokens, recovery codes, passwords, the install secret.

API key: ``vgl_`` + 22 random base62 characters (62**22 > 2**130) + 6 base62 characters of
CRC-32 over the random part. The checksum lets a scanner (or we) reject a mistyped or made-up
key without touching the database. Keys are stored only as SHA-256 of the whole text: they are
high-entropy, so a slow hash adds nothing; lookup is by that hash (an index probe, so no timing
side channel on the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import string
import zlib
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

KEY_PREFIX = "vgl_"
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_RANDOM_LEN = 22
_CHECK_LEN = 6
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_LEN + _CHECK_LEN
#: How many characters of a key are kept in clear for display (``vgl_`` + 8).
DISPLAY_PREFIX_LEN = len(KEY_PREFIX) + 8


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(_ALPHABET[digit])
    return "".join(reversed(out))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), _CHECK_LEN)


def new_api_key() -> str:
    random_part = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LEN))
    return KEY_PREFIX + random_part + _checksum(random_part)


def looks_like_api_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX)


def api_key_well_formed(text: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about the key existing)."""
    if len(text) != KEY_LENGTH or not text.startswith(KEY_PREFIX):
        return False
    body = text[len(KEY_PREFIX) :]
    if not all(c in _ALPHABET for c in body):
        return False
    random_part, check = body[:_RANDOM_LEN], body[_RANDOM_LEN:]
    return hmac.compare_digest(check, _checksum(random_part))


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LEN]


def sha256_hex(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_opaque_token(nbytes: int = 32) -> str:
    """Refresh tokens and other bearer secrets that are not API keys."""
    return secrets.token_urlsafe(nbytes)


def new_recovery_code() -> str:
    """``xxxxx-xxxxx-xxxxx``: 15 characters of base32 (75 bits), easy to type from paper."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    chars = "".join(secrets.choice(alphabet) for _ in range(15))
    return f"{chars[:5]}-{chars[5:10]}-{chars[10:]}"


def normalise_recovery_code(code: str) -> str:
    return "".join(c for c in code.lower() if c.isalnum())


def pepper_hash(pepper: bytes, value: str) -> str:
    return hmac.new(pepper, value.encode(), hashlib.sha256).hexdigest()


def new_password() -> str:
    """A generated password: 24 characters of URL-safe base64 (144 bits)."""
    return secrets.token_urlsafe(18)


# --- passwords ------------------------------------------------------------------------------------

# argon2-cffi's defaults are argon2id with RFC 9106's "low memory" parameters (t=3, 64 MiB, p=4).
_HASHER = PasswordHasher()
# Verified against when the account does not exist, so a login takes as long either way.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; spends the same work when there is no hash."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


# --- the install secret ---------------------------------------------------------------------------


def install_secret(home: Path, name: str, configured: str | None = None) -> bytes:
    """A per-install secret: the configured value, else ``home/keys/<name>.secret`` (created
    with mode 0600 on first use, 64 random bytes hex-encoded)."""
    if configured:
        return configured.encode()
    directory = home / "keys"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{name}.secret"
    if not path.exists():
        value = secrets.token_hex(64).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(value)
    data = path.read_bytes().strip()
    if len(data) < 32:
        raise ValueError(f"{path}: secret too short")
    return data
