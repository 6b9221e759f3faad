"""What an alert needs from a detection, derived before the write transaction.

On SQLite every writer of the database queues on one gate (:mod:`vigil.bus.queue_gate`), and the
detection worker holds it from storing detections to its commit, so ingest waits while the
worker records alerts. Entity, fingerprint, label and bounded context depend on the detection
alone: the detector derives them while it detects, before the gate (:func:`prepare`), and
:func:`vigil.alerts.service.record_detections` reads them back (:func:`entity_of`,
:func:`context_of`), deriving them there for records nobody prepared (correlation detections,
other callers) or prepared for other context limits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vigil.alerts.config import AlertsSettings
from vigil.alerts.entity import bounded_context, entity_label, extract_entity, fingerprint
from vigil.alerts.intake import DetectionRecord

_DEFAULTS = AlertsSettings()
_ENTITY = "entity"


@dataclass(frozen=True, slots=True)
class Entity:
    fields: dict[str, str]
    fingerprint: str
    label: str


def entity_of(det: DetectionRecord) -> Entity:
    """``det``'s entity, its fingerprint and label (cached on the record)."""
    found = det.prepared.get(_ENTITY)
    if isinstance(found, Entity):
        return found
    fields = extract_entity(kind=det.kind, event_fields=det.event_fields, group=det.group)
    value = Entity(
        fields=fields,
        fingerprint=fingerprint(tenant_id=det.tenant_id, rule_id=det.rule_id, entity=fields),
        label=entity_label(fields),
    )
    det.prepared[_ENTITY] = value
    return value


def context_of(det: DetectionRecord, *, max_bytes: int, value_max_chars: int) -> dict[str, Any]:
    """``det``'s bounded context for these limits (cached on the record)."""
    limits = (max_bytes, value_max_chars)
    found = det.prepared.get(limits)
    if isinstance(found, dict):
        return found
    value = bounded_context(det.event_fields, max_bytes=max_bytes, value_max_chars=value_max_chars)
    det.prepared[limits] = value
    return value


def prepare(det: DetectionRecord, settings: AlertsSettings = _DEFAULTS) -> None:
    """Derive ``det``'s values now, with the context limits of ``settings`` (the defaults
    unless the caller knows the recording process's)."""
    entity_of(det)
    context_of(
        det, max_bytes=settings.context_max_bytes, value_max_chars=settings.context_value_max_chars
    )
