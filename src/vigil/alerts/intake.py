"""What the detection pipeline hands to the alerts domain (the contract between them).

The pipeline builds one :class:`DetectionRecord` per detection and calls
``vigil.alerts.service.record_detections(session, detections=[...], now=...)`` inside the
transaction that also advances its queue offset, so a crash either keeps both or neither.
``detection_id`` is the pipeline's idempotency key: recording the same id twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class DetectionRecord:
    detection_id: str
    """Stable id: the same (tenant, rule, event(s)) always gives the same id."""
    tenant_id: str
    rule_id: str
    rule_title: str
    level: str | None
    """Sigma level after the tenant's re-levelling (informational, low, medium, high, critical)."""
    tags: tuple[str, ...]
    kind: str
    """"rule" or "correlation"."""
    event_fields: dict[str, Any]
    """Fields of the (last) matching event, for entity extraction and context."""
    event_ids: tuple[str, ...]
    """Queue event ids of the events that made the detection."""
    event_time: datetime | None
    accepted_at: datetime
    """When ingest accepted the (last) event; for event-to-alert latency."""
    group: dict[str, Any] = field(default_factory=dict)
    """Correlation group-by values (entity for correlation detections)."""
    correlation_id: str | None = None
    suppression_window_s: float | None = None
    """Per-rule override of the alert suppression window."""
    prepared: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False, hash=False)
    """A cache, never input: what :mod:`vigil.alerts.prepare` derived from the record ahead of
    the write transaction."""
