"""record_detections meters detections and alerts per tenant in its own transaction, and writes
on SQLite exactly the values SQLAlchemy would have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from vigil.alerts.service import Outcome, record_detections
from vigil.alerts.types import UtcDateTime
from vigil.config import Settings
from vigil.metering.config import MeteringSettings
from vigil.metering.models import UsageCounter

from .helpers import OTHER_TENANT, T0, TENANT, detection, record

NOW = T0 + timedelta(days=1, minutes=17)
HOUR = NOW.replace(minute=0)


def _usage(session: Session) -> dict[tuple[str, str, datetime], int]:
    return {
        (row.tenant_id, row.metric, row.hour.replace(tzinfo=UTC)): row.value
        for row in session.scalars(select(UsageCounter))
    }


def test_detections_and_new_alerts_are_counted_per_tenant(db: Session) -> None:
    record(
        db,
        [
            detection(detection_id="a1"),
            detection(detection_id="a2"),  # folds into a1's alert
            detection(detection_id="a3", host="WS02"),
            detection(detection_id="a3", host="WS02"),  # the same detection twice: once
            detection(detection_id="b1", tenant=OTHER_TENANT),
        ],
        now=NOW,
    )
    assert _usage(db) == {
        (TENANT, "detections", HOUR): 3,
        (TENANT, "alerts", HOUR): 2,
        (OTHER_TENANT, "detections", HOUR): 1,
        (OTHER_TENANT, "alerts", HOUR): 1,
    }
    # Later: one detection folds into an open alert, one raises an alert; one is a replay.
    record(
        db,
        [
            detection(detection_id="a4"),
            detection(detection_id="a5", rule_id="rule-2"),
            detection(detection_id="a1"),
        ],
        now=NOW + timedelta(minutes=5),
    )
    usage = _usage(db)
    assert usage[(TENANT, "detections", HOUR)] == 5
    assert usage[(TENANT, "alerts", HOUR)] == 3
    assert usage[(OTHER_TENANT, "detections", HOUR)] == 1


def test_a_replayed_batch_counts_nothing(db: Session) -> None:
    batch = [detection(detection_id="r1"), detection(detection_id="r2", host="WS09")]
    record(db, batch, now=NOW)
    record(db, batch, now=NOW + timedelta(hours=1))
    assert _usage(db) == {(TENANT, "detections", HOUR): 2, (TENANT, "alerts", HOUR): 2}


def test_nothing_is_counted_when_the_transaction_rolls_back(db: Session) -> None:
    record_detections(db, detections=[detection(detection_id="x1")], now=NOW)
    db.rollback()
    assert _usage(db) == {}


def test_nothing_is_counted_with_metering_off(db: Session) -> None:
    settings = Settings(metering=MeteringSettings(enabled=False))
    record(db, [detection(detection_id="off")], now=NOW, settings=settings)
    assert _usage(db) == {}


def test_sqlite_rows_hold_what_sqlalchemy_would_write(db: Session) -> None:
    if db.get_bind().dialect.name != "sqlite":
        pytest.skip("the driver-level insert is the SQLite path")
    seen = datetime(2026, 3, 1, 13, 0, 0, 250, tzinfo=UTC)
    det = detection(detection_id="t1", at=seen, fields={"Big": 2**70, "Name": "Zoë"})
    record(db, [det], now=NOW)
    conn = db.connection()

    def to_text(moment: datetime) -> str:
        """What SQLAlchemy binds for ``moment`` (SQLite hands a bound parameter back as is)."""
        bound = text("SELECT :moment").bindparams(bindparam("moment", moment, UtcDateTime()))
        value: str = conn.execute(bound).scalar_one()
        return value

    alert = conn.execute(
        text("SELECT first_seen, last_seen, created_at, context, tags, entity_fields FROM alerts")
    ).one()
    assert alert.first_seen == alert.last_seen == to_text(seen)
    assert alert.created_at == to_text(NOW)
    assert json.loads(alert.context)["Big"] == str(2**70)  # beyond 64 bits: kept as text
    assert json.loads(alert.context)["Name"] == "Zoë"
    assert json.loads(alert.tags) == list(det.tags)
    assert json.loads(alert.entity_fields) == {"host": "WS01", "user": "alice"}
    link = conn.execute(text("SELECT seen_at, recorded_at, event_ids FROM alert_detections")).one()
    assert (link.seen_at, link.recorded_at) == (to_text(seen), to_text(NOW))
    assert json.loads(link.event_ids) == list(det.event_ids)
    # The stored times compare with SQLAlchemy's bound ones: a later detection folds in.
    [folded] = record(db, [detection(detection_id="t2", at=seen + timedelta(minutes=1))], now=NOW)
    assert folded.outcome is Outcome.DEDUPLICATED
