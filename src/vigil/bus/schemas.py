"""API shapes of the event queue's dead letters (Pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

#: A Redis stream id (``<milliseconds>-<sequence>``), the id of a dead letter.
STREAM_ID_PATTERN = r"^\d{1,20}-\d{1,20}$"


class DeadLetterRead(BaseModel):
    id: str = Field(description="The dead letter's id; replay it with POST …/{id}/replay.")
    event_id: str | None = Field(description="The record's event_id, if it carried one.")
    error: str = Field(description="Why its last delivery failed.")
    attempts: int = Field(description="Deliveries that failed before it was set aside.")
    dead_at: datetime = Field(description="When it was moved to the dead-letter stream.")
    accepted_at: datetime = Field(description="When ingest accepted it.")
    consumer: str = Field(description="The worker that moved it (``<host>-<pid>``).")
    record: Any = Field(description="The record as it was sent (JSON; text if it is not JSON).")


class DeadLetterPage(BaseModel):
    items: list[DeadLetterRead]
    next_after: str | None = Field(
        description="Pass as ``after`` for the next page; null on the last page. A page reads "
        "a bounded slice of the dead-letter stream (500 entries, every tenant's), so it may "
        "hold fewer than ``limit`` items, even none, while ``next_after`` is set."
    )
    limit: int
    dead_lettering: bool = Field(
        description="False when this deployment's queue never dead-letters (the embedded SQL "
        "queue retries a failing batch in place): the list is then always empty."
    )


class ReplayResult(BaseModel):
    id: str = Field(description="The dead letter that was replayed (now gone from the list).")
    replayed_as: str = Field(description="Its new id on the event stream.")
    event_id: str | None
