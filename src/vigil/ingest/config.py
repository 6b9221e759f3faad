"""Settings of the ingest domain (nested in :class:`vigil.config.Settings` as ``ingest``).

Environment: ``VIGIL_INGEST__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

MIB = 1024 * 1024


class IngestSettings(BaseModel):
    max_body_bytes: int = Field(
        default=10 * MIB, gt=0, description="Largest request body on the wire (413 beyond)."
    )
    max_decoded_bytes: int = Field(
        default=40 * MIB,
        gt=0,
        description="Largest body after gzip decoding (guards against compression bombs).",
    )
    max_record_bytes: int = Field(
        default=1 * MIB, gt=0, description="Largest single record (one JSON object)."
    )
    max_depth: int = Field(
        default=32, ge=2, le=200, description="Deepest nesting of objects/arrays in a record."
    )
    idempotency_window_s: float = Field(
        default=3600.0,
        ge=0,
        description="How long a record's event_id is remembered after it was processed; a "
        "record re-sent later than this is accepted again.",
    )
