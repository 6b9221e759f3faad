"""The normalised event every reader produces and every detector consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(slots=True)
class EventRecord:
    """One event, flattened to Sigma field names.

    ``fields`` maps Sigma field names (``EventID``, ``Channel``, ``Provider_Name``, ``Computer``,
    the EventData/UserData names, or dotted paths for nested JSON) to scalar values (str, int,
    float, bool, None) or lists of scalars.
    """

    fields: dict[str, Any]
    source_file: str = ""
    #: EVTX EventRecordID, or the 1-based line number (JSON lines) / index (JSON array).
    record_id: int | None = None
    timestamp: datetime | None = None
    #: Optional logsource hint (product/category/service) carried by the source.
    logsource: dict[str, str] | None = field(default=None)
