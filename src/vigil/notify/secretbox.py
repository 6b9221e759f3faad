"""Channel secrets at rest: one Fernet-encrypted JSON object per channel.

Keys come from ``notify.secret_keys`` (the first encrypts, every key decrypts, so a key can be
rotated by prepending a new one) or, by default, from ``$VIGIL_HOME/keys/notify-secrets.key``
created with mode 0600 on first use. Several processes sharing a database (scale-out) must share
the key: set ``VIGIL_NOTIFY__SECRET_KEYS``. Losing the key makes stored secrets unreadable
(deliveries then fail with a clear error until the channel's secrets are set again).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from vigil.errors import ConfigurationError

KEY_FILE = Path("keys") / "notify-secrets.key"


class SecretsUnreadableError(ConfigurationError):
    """A channel's stored secrets cannot be decrypted with the configured keys (the key was
    lost or changed): a server configuration problem, not the caller's."""


class SecretBox:
    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError("notify: at least one secret key is needed")
        try:
            self._fernet = MultiFernet([Fernet(k) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ConfigurationError(f"notify.secret_keys: not a Fernet key ({exc})") from exc

    def seal(self, secrets: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(orjson.dumps(secrets))

    def open(self, token: bytes) -> dict[str, Any]:
        try:
            data = orjson.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise SecretsUnreadableError(
                "channel secrets cannot be decrypted with the configured notify.secret_keys"
            ) from exc
        if not isinstance(data, dict):
            raise SecretsUnreadableError("channel secrets are not an object")
        return data

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with a fresh random key (tests, one-off tools)."""
        return cls([Fernet.generate_key()])


def load_key_file(home: Path) -> bytes:
    """Read ``home/keys/notify-secrets.key``, creating it (0600) if missing."""
    path = home / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    # Write a private temporary file, then link it into place: the link is atomic and fails if
    # another process got there first, so nobody ever reads a half-written key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        return path.read_bytes().strip()
    finally:
        tmp.unlink(missing_ok=True)
    return key


def box_for(home: Path, configured: Sequence[str]) -> SecretBox:
    if configured:
        return SecretBox(list(configured))
    return SecretBox([load_key_file(home)])
