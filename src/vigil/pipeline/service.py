"""Storage side of the pipeline: detections and per-tenant rule settings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vigil.alerts.intake import DetectionRecord
from vigil.pipeline.detector import RuleOverride, TenantOverrides
from vigil.pipeline.models import Detection, RuleSetting
from vigil.store.bulk import insert_rows

#: Bound parameters per IN list (SQLite allows 32766 per statement; stay far below).
CHUNK = 500

LEVELS = ("informational", "low", "medium", "high", "critical")


def store_detections(
    session: Session,
    *,
    records: Sequence[DetectionRecord],
    seqs: Sequence[int | None],
    now: datetime,
) -> list[DetectionRecord]:
    """Insert detections whose id is new (in the caller's transaction); return those.

    The primary key on ``detection_id`` is the guarantee; the lookup only decides which records
    to hand on, so a redelivered batch makes no second detection and no second alert.
    """
    if not records:
        return []
    ids = [r.detection_id for r in records]
    existing: set[str] = set()
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        existing.update(
            session.scalars(select(Detection.detection_id).where(Detection.detection_id.in_(chunk)))
        )
    fresh: list[DetectionRecord] = []
    rows: list[dict[str, Any]] = []
    for record, seq in zip(records, seqs, strict=True):
        if record.detection_id in existing:
            continue
        existing.add(record.detection_id)  # a batch may repeat one (the same correlation hit)
        fresh.append(record)
        rows.append(
            {
                "detection_id": record.detection_id,
                "tenant_id": record.tenant_id,
                "rule_id": record.rule_id,
                "rule_title": record.rule_title[:500],
                "level": record.level,
                "kind": record.kind,
                "event_seq": seq,
                "event_ids": list(record.event_ids),
                "event_time": record.event_time,
                "accepted_at": record.accepted_at,
                "detected_at": now,
                "fields": record.event_fields,
            }
        )
    insert_rows(session, Detection, rows, on_conflict_do_nothing=("detection_id",))
    return fresh


def overrides_signature(session: Session) -> tuple[int, Any]:
    """Changes whenever any tenant's rule settings change (count and newest update)."""
    count, newest = session.execute(
        select(func.count(), func.max(RuleSetting.updated_at)).select_from(RuleSetting)
    ).one()
    return int(count), newest


def load_overrides(session: Session) -> dict[str, TenantOverrides]:
    """Every tenant's rule settings (an unscoped session; the worker serves all tenants)."""
    by_tenant: dict[str, dict[str, RuleOverride]] = {}
    for row in session.scalars(select(RuleSetting)):
        by_tenant.setdefault(row.tenant_id, {})[row.rule_id] = RuleOverride(
            enabled=row.enabled, level=row.level, suppression_window_s=row.suppression_window_s
        )
    return {tenant: TenantOverrides(rules) for tenant, rules in by_tenant.items()}


def get_setting(session: Session, *, rule_id: str) -> RuleSetting | None:
    """The caller's tenant's setting for ``rule_id`` (the session is tenant-scoped)."""
    return session.scalars(select(RuleSetting).where(RuleSetting.rule_id == rule_id)).first()


def list_settings(session: Session) -> dict[str, RuleSetting]:
    return {row.rule_id: row for row in session.scalars(select(RuleSetting))}


def update_setting(
    session: Session,
    *,
    tenant_id: str,
    rule_id: str,
    changes: dict[str, Any],
    actor: str,
    now: datetime | None = None,
) -> tuple[RuleSetting, dict[str, Any]]:
    """Apply ``changes`` (any of enabled, level, suppression_window_s; None clears level and
    window) to the tenant's setting of ``rule_id``; return it and the previous values."""
    row = get_setting(session, rule_id=rule_id)
    before: dict[str, Any] = {"enabled": True, "level": None, "suppression_window_s": None}
    if row is None:
        row = RuleSetting(tenant_id=tenant_id, rule_id=rule_id, enabled=True)
        session.add(row)
    else:
        before = {
            "enabled": row.enabled,
            "level": row.level,
            "suppression_window_s": row.suppression_window_s,
        }
    for name, value in changes.items():
        setattr(row, name, value)
    row.updated_at = now or datetime.now(UTC)
    row.updated_by = actor
    session.flush()
    return row, before
