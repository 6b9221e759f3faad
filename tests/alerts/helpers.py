"""Test helpers shared by the alerts and incidents tests: detections and alert records."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from vigil.alerts.intake import DetectionRecord
from vigil.alerts.service import RecordedDetection, record_detections
from vigil.config import Settings

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"

_ids = itertools.count(1)


def detection(
    *,
    rule_id: str = "rule-1",
    title: str = "Suspicious thing",
    level: str | None = "high",
    host: str | None = "WS01",
    user: str | None = "alice",
    at: datetime = T0,
    tenant: str = TENANT,
    detection_id: str | None = None,
    kind: str = "rule",
    group: dict[str, Any] | None = None,
    correlation_id: str | None = None,
    window_s: float | None = None,
    tags: Sequence[str] = ("attack.execution", "attack.t1059.001"),
    event_ids: Sequence[str] | None = None,
    fields: dict[str, Any] | None = None,
) -> DetectionRecord:
    n = next(_ids)
    event_fields: dict[str, Any] = {"EventID": 4688, "CommandLine": "powershell -enc AAA"}
    if host is not None:
        event_fields["Computer"] = host
    if user is not None:
        event_fields["TargetUserName"] = user
    event_fields.update(fields or {})
    return DetectionRecord(
        detection_id=detection_id or f"det-{n}",
        tenant_id=tenant,
        rule_id=rule_id,
        rule_title=title,
        level=level,
        tags=tuple(tags),
        kind=kind,
        event_fields=event_fields,
        event_ids=tuple(event_ids) if event_ids is not None else (f"ev-{n}",),
        event_time=at,
        accepted_at=at + timedelta(seconds=1),
        group=group or {},
        correlation_id=correlation_id,
        suppression_window_s=window_s,
    )


def record(
    session: Session,
    detections: Sequence[DetectionRecord],
    *,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> list[RecordedDetection]:
    out = record_detections(
        session, detections=detections, now=now or T0 + timedelta(days=1), settings=settings
    )
    session.commit()
    return out


def raise_alert(session: Session, **kwargs: Any) -> str:
    """Record one detection and return the id of its alert."""
    return record(session, [detection(**kwargs)], now=kwargs.get("at", T0))[0].alert_id
