"""Ingest: validated records into the durable queue, with quota, metering and metrics."""

from __future__ import annotations

from dataclasses import dataclass

from vigil.bus.queue import EventQueue
from vigil.ingest.config import IngestSettings
from vigil.ingest.parse import BodyFormat, Limits, ParsedBatch, gunzip, parse_body
from vigil.metering.meter import Meter
from vigil.obs.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, EVENTS_REJECTED, INGEST_BYTES

#: Rejections listed in one answer (the count is always complete).
MAX_LISTED_REJECTIONS = 1000


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    accepted: int
    duplicates: int
    batch: ParsedBatch


def limits_of(settings: IngestSettings) -> Limits:
    return Limits(
        max_decoded_bytes=settings.max_decoded_bytes,
        max_record_bytes=settings.max_record_bytes,
        max_depth=settings.max_depth,
    )


def ingest(
    *,
    queue: EventQueue,
    meter: Meter,
    settings: IngestSettings,
    tenant_id: str,
    body: bytes,
    fmt: BodyFormat,
    gzip: bool,
) -> IngestOutcome:
    """Decode, validate and queue ``body``; durable when this returns.

    Raises InvalidInputError (undecodable body), PayloadTooLargeError (decoded body too big)
    and QuotaExceededError (before anything is queued).
    """
    wire_bytes = len(body)
    INGEST_BYTES.inc(wire_bytes)
    if gzip:
        body = gunzip(body, limit=settings.max_decoded_bytes)
    batch = parse_body(body, fmt, tenant_id=tenant_id, limits=limits_of(settings))
    EVENTS_REJECTED.inc(len(batch.rejected))
    if not batch.records:
        return IngestOutcome(0, 0, batch)
    meter.check_quota(tenant_id, "events", len(batch.records))
    result = queue.publish(tenant_id, batch.records)
    EVENTS_ACCEPTED.inc(result.accepted)
    EVENTS_DUPLICATE.inc(result.duplicates)
    meter.add(tenant_id, "events", result.accepted)
    meter.add(tenant_id, "event_bytes", wire_bytes)
    return IngestOutcome(result.accepted, result.duplicates, batch)
