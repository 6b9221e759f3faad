"""Queue payloads → :class:`vigil.events.model.EventRecord` for the detection engine.

* Windows events (evtx_dump form) and flat JSON logs go through :func:`vigil.events.normalise`
  (a top-level ``logsource`` object is the hint for rules whose logsource has no mapping).
* Envelope records (:class:`vigil.events.envelope.SecurityEvent`) are flattened so rules can
  match them either way: the envelope's own fields as dotted paths (``event_type``,
  ``source.service``, ``details.user.name``, ``metadata.correlation_id``) *and* ``details``
  normalised as if it were the event itself (``user.name``; a Windows event inside ``details``
  gives its Sigma fields; ``details.logsource`` is the hint). Names from ``details`` win when
  both exist, since the payload is what rules are written against.

``EventRecord.source_file`` carries the record's event key (its ``event_id`` or ``seq:<n>``)
and ``record_id`` its queue sequence number, so detections and correlation contributions can
name the queued events they came from.
"""

from __future__ import annotations

from typing import Any

import orjson

from vigil.events.envelope import looks_like_envelope
from vigil.events.model import EventRecord
from vigil.events.normalise import flatten_json, normalise
from vigil.events.timestamps import parse_timestamp


def event_key(seq: int, event_id: str | None) -> str:
    return event_id if event_id is not None else f"seq:{seq}"


def to_record(payload: bytes, *, seq: int, event_id: str | None) -> EventRecord:
    """Decode and normalise one queued payload (ingest validated it: always a JSON object)."""
    obj: dict[str, Any] = orjson.loads(payload)
    key = event_key(seq, event_id)
    if looks_like_envelope(obj):
        return envelope_record(obj, source=key, record_id=seq)
    return normalise(obj, source_file=key, record_id=seq)


def envelope_record(obj: dict[str, Any], *, source: str, record_id: int) -> EventRecord:
    details = obj.get("details")
    details = details if isinstance(details, dict) else {}
    record = normalise(details, source_file=source, record_id=record_id)
    fields = record.fields
    for name, value in flatten_json(obj).items():
        fields.setdefault(name, value)
    if record.timestamp is None:
        record.timestamp = parse_timestamp(obj.get("timestamp"))
    return record
