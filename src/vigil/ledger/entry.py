"""Audit entries as canonical JSON: the exact bytes that become Merkle leaves.

Canonical form: an object with exactly the keys of :data:`ENTRY_KEYS`, keys sorted, no insignificant
whitespace, UTF-8 without ``\\u`` escapes for non-ASCII, integers only as numbers. For the value
types an entry holds (strings, one integer, null) this is the RFC 8785 (JCS) serialisation.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.ledger.errors import LedgerError

ENTRY_KEYS = frozenset(
    {"seq", "time", "tenant", "actor", "action", "target", "request_id", "change_digest"}
)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MAX_FIELD = 255


class EntryError(LedgerError):
    """An audit entry is malformed (its position is in the message)."""


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8); rejects NaN and non-JSON types."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise EntryError(f"audit change: not representable as canonical JSON ({exc})") from None


def change_digest(change: Any) -> str:
    """``sha256:<hex>`` of the change: raw bytes as given, anything else as canonical JSON."""
    data = change if isinstance(change, bytes) else canonical_json(change)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def format_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise EntryError("audit entry time: must be timezone-aware")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    # The exact shape format_time writes goes through fromisoformat (several times cheaper
    # than strptime, which appends and reads paid for per entry); anything else through
    # strptime, which accepts or rejects it as it always did.
    if (
        len(text) == 27
        and text[26] == "Z"
        and text[4] == text[7] == "-"
        and text[10] == "T"
        and text[13] == text[16] == ":"
        and text[19] == "."
        and text[:4].isdigit()
    ):
        try:
            return datetime.fromisoformat(text[:26]).replace(tzinfo=UTC)
        except ValueError:
            pass
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Entry:
    """One audit entry (decoded)."""

    seq: int
    time: str
    tenant: str
    actor: str
    action: str
    target: str
    request_id: str | None
    change_digest: str

    def canonical(self) -> bytes:
        return canonical_json(
            {
                "seq": self.seq,
                "time": self.time,
                "tenant": self.tenant,
                "actor": self.actor,
                "action": self.action,
                "target": self.target,
                "request_id": self.request_id,
                "change_digest": self.change_digest,
            }
        )

    @property
    def when(self) -> datetime:
        return parse_time(self.time)


def _field(name: str, value: object, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_FIELD:
        raise EntryError(f"audit entry {name}: must be a non-empty string of <= {MAX_FIELD} chars")
    return value


def make_entry(
    *,
    seq: int,
    time: datetime,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    request_id: str | None,
    digest: str,
) -> Entry:
    """Validate the fields and build an entry."""
    if not _DIGEST.match(digest):
        raise EntryError(f"audit entry change digest {digest[:20]!r}: expected sha256:<64 hex>")
    return Entry(
        seq=seq,
        time=format_time(time),
        tenant=str(_field("tenant", tenant)),
        actor=str(_field("actor", actor)),
        action=str(_field("action", action)),
        target=str(_field("target", target)),
        request_id=_field("request_id", request_id, optional=True),
        change_digest=digest,
    )


def decode_entry(data: bytes, *, where: str = "audit entry") -> Entry:
    """Parse canonical entry bytes; rejects anything that is not exactly canonical."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise EntryError(f"{where}: not valid JSON") from None
    if not isinstance(obj, dict) or set(obj) != ENTRY_KEYS:
        raise EntryError(f"{where}: expected exactly the keys {sorted(ENTRY_KEYS)}")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise EntryError(f"{where}: seq must be a non-negative integer")
    strings = ("time", "tenant", "actor", "action", "target", "change_digest")
    if any(not isinstance(obj[k], str) for k in strings) or not (
        obj["request_id"] is None or isinstance(obj["request_id"], str)
    ):
        raise EntryError(f"{where}: field types are wrong")
    if not _TIME.match(obj["time"]) or not _DIGEST.match(obj["change_digest"]):
        raise EntryError(f"{where}: time or change_digest is malformed")
    entry = Entry(**obj)
    if entry.canonical() != data:
        raise EntryError(f"{where}: bytes are not in canonical form")
    return entry
