"""Pydantic shapes of the audit ledger, as the API will serve them.

Hashes travel as standard base64 (as in checkpoints); proofs list their hashes from the leaf up.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


#: A time the API shows with its offset: SQLite hands stored times back naive (they are UTC), and
#: a time without an offset is not an RFC 3339 ``date-time``.
UtcTime = Annotated[datetime, AfterValidator(_utc)]


class AuditEntryCreate(BaseModel):
    """What a caller records; the ledger adds the sequence number and (by default) the time."""

    model_config = ConfigDict(frozen=True)

    tenant: str
    actor: str = Field(description="User id or API key id.")
    action: str = Field(description="Dotted verb, e.g. 'rule.update'.")
    target: str = Field(description="What the action touched, e.g. 'rule:1234'.")
    request_id: str | None = None
    change: Any = Field(default=None, description="The change; only its digest is logged.")
    change_digest: str | None = Field(default=None, description="sha256:<hex>, instead of change.")
    time: datetime | None = None


class AuditEntryRead(BaseModel):
    seq: int
    time: UtcTime
    tenant: str
    actor: str
    action: str
    target: str
    request_id: str | None
    change_digest: str
    leaf_hash: str = Field(description="base64 SHA-256(0x00 || canonical entry).")
    canonical: str = Field(description="The canonical JSON that was hashed.")


class AuditEntryPage(BaseModel):
    items: list[AuditEntryRead]
    next_after: int | None = Field(description="Pass as after_seq for the next page, if any.")


class CheckpointRead(BaseModel):
    origin: str
    size: int
    root_hash: str
    key_id: str
    note: str = Field(description="The C2SP signed note, verbatim.")
    created_at: UtcTime


class InclusionProofRead(BaseModel):
    seq: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyProofRead(BaseModel):
    old_size: int
    new_size: int
    hashes: list[str]


class SigningKeyRead(BaseModel):
    key_id: str
    vkey: str = Field(description="Verifier key: name+id+base64(0x01 || public key).")
    status: str
    created_at: UtcTime
    retired_at: UtcTime | None = None


class ArchiveRead(BaseModel):
    begin: int
    end: int
    location: str
    checkpoint_size: int
