"""Detections in, alerts out: deduplication by fingerprint inside a suppression window.

:func:`record_detections` runs inside the detection pipeline's transaction (it never commits) and
is set-based: per batch it does one lookup of already-recorded detection ids, one lookup of open
alerts by fingerprint, then bulk inserts and one bulk update, whatever the batch size.

Folding rule: a detection *seen* at ``t`` (its event time, or when ingest accepted it; a time in
the future is taken as now) folds into the open alert with its fingerprint whose ``last_seen`` is
at or after ``t - window`` (window: the rule's ``suppression_window_s``, else the setting,
default 1 h). The alert's ``count`` grows by one, ``last_seen``/``first_seen`` widen to include
``t``. Otherwise the detection raises a new alert (``threat_detected`` on the outbox), which is
then offered to incident grouping (:mod:`vigil.incidents.grouping`).

Recording a ``detection_id`` that is already recorded changes nothing; its outcome is
``duplicate`` and names the alert it went to.

Usage metering: the new detections and the new alerts of each tenant are added to its usage
counters in the same transaction (:func:`vigil.metering.service.count_committed`), so they are
counted exactly once whatever process records them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, select, update
from sqlalchemy.orm import Session

from vigil.alerts.aftercommit import after_commit
from vigil.alerts.config import AlertsSettings
from vigil.alerts.events import AlertSummary, threat_detected
from vigil.alerts.intake import DetectionRecord
from vigil.alerts.models import TITLE_MAX, Alert, AlertDetection
from vigil.alerts.prepare import Entity, context_of, entity_of
from vigil.alerts.states import OPEN_STATUSES, AlertStatus
from vigil.alerts.types import UtcDateTime, as_utc, insert_rows, lock_keys, table_of
from vigil.bus.outbox import emit_many
from vigil.events.envelope import SecurityEvent, Severity
from vigil.metering.service import count_committed
from vigil.obs.metrics import ALERTS_DEDUPLICATED, ALERTS_RAISED

if TYPE_CHECKING:
    from vigil.config import Settings

#: Bound parameters per IN list (SQLite allows 32766 per statement; stay far below).
CHUNK = 500


class Outcome(StrEnum):
    CREATED = "created"
    """The detection raised a new alert."""
    DEDUPLICATED = "deduplicated"
    """The detection folded into an open alert with the same fingerprint."""
    DUPLICATE = "duplicate"
    """This detection id was recorded before; nothing changed."""


@dataclass(frozen=True, slots=True)
class RecordedDetection:
    detection_id: str
    tenant_id: str
    alert_id: str
    outcome: Outcome


@dataclass(slots=True)
class _Slot:
    """An alert as the batch sees it: an existing open one, or one this batch creates."""

    id: str
    is_new: bool
    first_seen: datetime
    last_seen: datetime
    added: int = 0
    row: dict[str, Any] = field(default_factory=dict)
    """Insert values (new alerts only)."""


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _seen_at(detection: DetectionRecord, now: datetime) -> datetime:
    seen = as_utc(detection.event_time or detection.accepted_at)
    return min(seen, now)


def _recorded(session: Session, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """``(tenant, detection id) → alert id`` for the keys that are already recorded."""
    found: dict[tuple[str, str], str] = {}
    ids = sorted({det for _, det in keys})
    for part in chunks(ids):
        rows = session.execute(
            select(
                AlertDetection.tenant_id, AlertDetection.detection_id, AlertDetection.alert_id
            ).where(AlertDetection.detection_id.in_(part))
        ).all()
        for tenant, det, alert_id in rows:
            if (tenant, det) in keys:
                found[(tenant, det)] = alert_id
    return found


def _open_slots(
    session: Session, fingerprints: set[str], *, earliest: datetime
) -> dict[str, _Slot]:
    """The most recently seen open alert per fingerprint (last seen at or after ``earliest``)."""
    slots: dict[str, _Slot] = {}
    open_values = [s.value for s in OPEN_STATUSES]
    for part in chunks(sorted(fingerprints)):
        rows = session.execute(
            select(Alert.id, Alert.fingerprint, Alert.first_seen, Alert.last_seen).where(
                Alert.fingerprint.in_(part),
                Alert.status.in_(open_values),
                Alert.last_seen >= earliest,
            )
        ).all()
        for alert_id, fp, first_seen, last_seen in rows:
            current = slots.get(fp)
            if current is None or last_seen > current.last_seen:
                slots[fp] = _Slot(
                    id=alert_id, is_new=False, first_seen=first_seen, last_seen=last_seen
                )
    return slots


def _new_alert_row(
    detection: DetectionRecord,
    *,
    alert_id: str,
    entity: Entity,
    seen: datetime,
    now: datetime,
    cfg: AlertsSettings,
) -> dict[str, Any]:
    severity = Severity.from_level(detection.level)
    return {
        "id": alert_id,
        "tenant_id": detection.tenant_id,
        "fingerprint": entity.fingerprint,
        "rule_id": detection.rule_id[:200],
        "title": (detection.rule_title or detection.rule_id)[:TITLE_MAX],
        "kind": detection.kind[:20],
        "severity": severity.value,
        "severity_rank": severity.rank,
        "status": AlertStatus.NEW.value,
        "entity": entity.label,
        "entity_fields": entity.fields,
        "tags": list(detection.tags),
        "context": context_of(
            detection, max_bytes=cfg.context_max_bytes, value_max_chars=cfg.context_value_max_chars
        ),
        "correlation_id": detection.correlation_id[:200] if detection.correlation_id else None,
        "count": 0,
        "first_seen": seen,
        "last_seen": seen,
        "assignee": None,
        "created_at": now,
        "updated_at": now,
        "acknowledged_at": None,
        "resolved_at": None,
    }


def _summary(row: dict[str, Any]) -> AlertSummary:
    return AlertSummary(
        id=row["id"],
        tenant_id=row["tenant_id"],
        rule_id=row["rule_id"],
        title=row["title"],
        kind=row["kind"],
        severity=Severity(row["severity"]),
        status=row["status"],
        entity=row["entity"],
        entity_fields=row["entity_fields"],
        tags=tuple(row["tags"]),
        correlation_id=row["correlation_id"],
        count=row["count"],
        first_seen=row["first_seen"],
        last_seen=row["last_seen"],
    )


def record_detections(
    session: Session,
    *,
    detections: Sequence[DetectionRecord],
    now: datetime,
    settings: Settings | None = None,
) -> list[RecordedDetection]:
    """Turn detections into alerts in the caller's transaction; one outcome per detection, in
    order. ``settings`` (the process settings) supplies the alert and incident policies; without
    it the documented defaults apply."""
    if not detections:
        return []
    from vigil.incidents import grouping
    from vigil.incidents.config import IncidentsSettings

    cfg = settings.alerts if settings is not None else AlertsSettings()
    incident_cfg = settings.incidents if settings is not None else IncidentsSettings()
    now = as_utc(now)

    keys = {(d.tenant_id, d.detection_id) for d in detections}
    recorded = _recorded(session, keys)

    # Entity, fingerprint and seen time of every detection not recorded before (the detector
    # usually derived the entity already, outside the write transaction: vigil.alerts.prepare).
    fresh: list[tuple[int, DetectionRecord, Entity, datetime]] = []
    for index, det in enumerate(detections):
        if (det.tenant_id, det.detection_id) in recorded:
            continue
        fresh.append((index, det, entity_of(det), _seen_at(det, now)))

    slots: dict[str, _Slot] = {}
    if fresh:
        widest = max(d.suppression_window_s or cfg.suppression_window_s for _, d, *_ in fresh)
        earliest = min(seen for *_, seen in fresh) - timedelta(seconds=widest)
        fingerprints = {entity.fingerprint for _, _, entity, _ in fresh}
        lock_keys(session, "alert", fingerprints)
        slots = _open_slots(session, fingerprints, earliest=earliest)
    # Kept apart: a detection outside an open alert's window replaces that alert in ``slots``
    # with a new one, and detections folded into the open alert before must still count.
    opened_before = list(slots.values())

    outcomes: dict[int, RecordedDetection] = {}
    links: list[dict[str, Any]] = []
    created: list[_Slot] = []
    batch_ids: dict[tuple[str, str], str] = {}
    for index, det, entity, seen in fresh:
        key = (det.tenant_id, det.detection_id)
        if key in batch_ids:  # the same detection twice in one batch
            outcomes[index] = RecordedDetection(
                det.detection_id, det.tenant_id, batch_ids[key], Outcome.DUPLICATE
            )
            continue
        window = timedelta(seconds=det.suppression_window_s or cfg.suppression_window_s)
        slot = slots.get(entity.fingerprint)
        if slot is not None and slot.last_seen >= seen - window:
            slot.first_seen = min(slot.first_seen, seen)
            slot.last_seen = max(slot.last_seen, seen)
            outcome = Outcome.DEDUPLICATED
        else:
            alert_id = str(uuid.uuid4())
            row = _new_alert_row(det, alert_id=alert_id, entity=entity, seen=seen, now=now, cfg=cfg)
            slot = _Slot(id=alert_id, is_new=True, first_seen=seen, last_seen=seen, row=row)
            slots[entity.fingerprint] = slot
            created.append(slot)
            outcome = Outcome.CREATED
        slot.added += 1
        batch_ids[key] = slot.id
        outcomes[index] = RecordedDetection(det.detection_id, det.tenant_id, slot.id, outcome)
        links.append(
            {
                "tenant_id": det.tenant_id,
                "alert_id": slot.id,
                "detection_id": det.detection_id,
                "event_ids": list(det.event_ids[: cfg.event_ids_per_detection]),
                "seen_at": seen,
                "recorded_at": now,
            }
        )

    new_rows = []
    for slot in created:
        slot.row.update(count=slot.added, first_seen=slot.first_seen, last_seen=slot.last_seen)
        new_rows.append(slot.row)
    folded = [s for s in opened_before if s.added]
    _write(session, new_rows=new_rows, folded=folded, links=links, now=now)

    summaries = [_summary(row) for row in new_rows]
    by_tenant: dict[str, list[SecurityEvent]] = {}
    for summary in summaries:
        by_tenant.setdefault(summary.tenant_id, []).append(threat_detected(summary))
    for tenant_id, events in by_tenant.items():
        emit_many(session, tenant_id=tenant_id, events=events)

    if incident_cfg.auto_group:
        grouping.group_alerts(
            session,
            new=summaries,
            touched={s.id: s.last_seen for s in folded},
            now=now,
            settings=incident_cfg,
        )

    if settings is None or settings.metering.enabled:
        # Usage follows the transaction: counted if and only if these alerts commit.
        usage = Counter(
            (o.tenant_id, "detections")
            for o in outcomes.values()
            if o.outcome is not Outcome.DUPLICATE
        )
        usage.update((row["tenant_id"], "alerts") for row in new_rows)
        count_committed(session, counts=usage, now=now)

    raised = Counter(row["severity"] for row in new_rows)
    deduplicated = sum(1 for o in outcomes.values() if o.outcome is Outcome.DEDUPLICATED)

    def count_metrics() -> None:
        for severity, n in raised.items():
            ALERTS_RAISED.labels(severity).inc(n)
        if deduplicated:
            ALERTS_DEDUPLICATED.inc(deduplicated)

    after_commit(session, count_metrics)

    result: list[RecordedDetection] = []
    for index, det in enumerate(detections):
        if index in outcomes:
            result.append(outcomes[index])
        else:
            alert_id = recorded[(det.tenant_id, det.detection_id)]
            result.append(
                RecordedDetection(det.detection_id, det.tenant_id, alert_id, Outcome.DUPLICATE)
            )
    return result


def _write(
    session: Session,
    *,
    new_rows: list[dict[str, Any]],
    folded: list[_Slot],
    links: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Bulk statements on the session's connection (Core: no per-row ORM bookkeeping)."""
    insert_rows(session, Alert, new_rows)
    conn = session.connection()
    alerts = table_of(Alert)
    if folded:
        b_first = bindparam("b_first", type_=UtcDateTime())
        b_last = bindparam("b_last", type_=UtcDateTime())
        stmt = (
            update(alerts)
            .where(alerts.c.id == bindparam("b_id"))
            .values(
                count=alerts.c.count + bindparam("b_added"),
                first_seen=case(
                    (alerts.c.first_seen > b_first, b_first), else_=alerts.c.first_seen
                ),
                last_seen=case((alerts.c.last_seen < b_last, b_last), else_=alerts.c.last_seen),
                updated_at=bindparam("b_now", type_=UtcDateTime()),
            )
        )
        conn.execute(
            stmt,
            [
                {
                    "b_id": s.id,
                    "b_added": s.added,
                    "b_first": s.first_seen,
                    "b_last": s.last_seen,
                    "b_now": now,
                }
                for s in folded
            ],
        )
    insert_rows(session, AlertDetection, links)
