"""Webhook signatures: how Vigil signs a delivery and how a receiver checks it.

Header::

    X-Vigil-Signature: t=1767225600,v1=5257a869e7ec...e108d8bd   (64 hex digits)

``v1`` is the lowercase hex HMAC-SHA256, keyed with the channel's secret (its UTF-8 bytes), of
``f"{t}.".encode() + body``: the Unix time in seconds, a dot, then the raw request body exactly as
received. While a rotated-out secret is still in its grace period the header carries one ``v1``
per valid secret (newest first); a receiver accepts the request when any of them matches.

Receivers should check the timestamp too (:func:`verify_signature`'s ``tolerance_s``): it stops a
captured request from being replayed later. ``X-Vigil-Event-Id`` identifies the event; a receiver
that must not act twice keeps the ids it has seen (delivery is at-least-once).

This module has no Vigil dependencies so receivers can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

SIGNATURE_HEADER = "X-Vigil-Signature"
EVENT_ID_HEADER = "X-Vigil-Event-Id"
EVENT_TYPE_HEADER = "X-Vigil-Event-Type"
DELIVERY_ID_HEADER = "X-Vigil-Delivery-Id"
ATTEMPT_HEADER = "X-Vigil-Delivery-Attempt"

SCHEME = "v1"
SECRET_PREFIX = "whsec_"
MIN_SECRET_LENGTH = 16
DEFAULT_TOLERANCE_S = 300


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + 32 random bytes, URL-safe base64."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def compute_signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` under ``secret``."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secrets_: Sequence[str], body: bytes, *, timestamp: int | None = None) -> str:
    """The ``X-Vigil-Signature`` value for ``body``, one ``v1`` per secret (newest first)."""
    if not secrets_:
        raise ValueError("at least one secret is needed to sign")
    t = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={t}"] + [f"{SCHEME}={compute_signature(s, t, body)}" for s in secrets_]
    return ",".join(parts)


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """``(timestamp, [v1 signatures])``; raises ``ValueError`` on a malformed header."""
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            raise ValueError(f"malformed signature header element {item!r}")
        if key == "t":
            if not value.isdigit():
                raise ValueError("signature timestamp is not an integer")
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value.lower())
        # Unknown schemes are ignored so newer senders stay compatible with older receivers.
    if timestamp is None:
        raise ValueError("signature header has no timestamp")
    if not signatures:
        raise ValueError(f"signature header has no {SCHEME} signature")
    return timestamp, signatures


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its timestamp is within
    ``tolerance_s`` seconds of ``now`` (default: the current time). ``body`` must be the raw
    request bytes, not re-serialised JSON. A malformed header is simply not valid."""
    try:
        timestamp, signatures = parse_signature_header(header)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        return False
    expected = compute_signature(secret, timestamp, body)
    # Compare against every candidate without stopping early (constant time per candidate).
    found = False
    for candidate in signatures:
        if hmac.compare_digest(expected, candidate):
            found = True
    return found
