"""What ``POST /v1/events`` answers."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RejectedRecord(BaseModel):
    index: int = Field(description="0-based position of the record in the body.")
    field: str = Field(description="Path of the offending field inside the record ('' = whole).")
    error: str
    line: int | None = Field(default=None, description="1-based line (NDJSON bodies).")


class IngestResult(BaseModel):
    accepted: int = Field(description="Records queued by this request.")
    duplicates: int = Field(description="Records skipped: their event_id was already queued.")
    rejected: list[RejectedRecord] = Field(
        description="Invalid records (the first 1,000); the rest of the batch was accepted."
    )
    rejected_total: int = Field(description="How many records were rejected in all.")
