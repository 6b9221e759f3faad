"""GET /v1/alerts semantics at the service level: filters, sorts, keyset pages, alert detail."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy.orm import Session

from vigil.alerts import lifecycle
from vigil.alerts.paging import SortOrder
from vigil.alerts.query import alert_detail, list_alerts
from vigil.alerts.schemas import AlertQuery, AlertSort
from vigil.alerts.states import AlertStatus
from vigil.errors import InvalidInputError, NotFoundError

from .helpers import OTHER_TENANT, T0, detection, raise_alert, record


def _ids(session: Session, **filters: Any) -> list[str]:
    rows, _ = list_alerts(session, query=AlertQuery(**filters))
    return [r.id for r in rows]


@pytest.fixture
def sample(db: Session) -> dict[str, str]:
    """Five alerts of tenant-a (and one of tenant-b) with distinct attributes."""
    out = {
        "crit": raise_alert(db, level="critical", host="DC01", title="Mimikatz", at=T0),
        "high": raise_alert(
            db, level="high", host="WS01", user="bob", title="PsExec", at=T0 + timedelta(hours=1)
        ),
        "med": raise_alert(
            db, level="medium", host="WS02", title="Odd 100%_done", at=T0 + timedelta(hours=2)
        ),
        "low": raise_alert(
            db, level="low", rule_id="rule-9", host="ws01", at=T0 + timedelta(hours=3)
        ),
        "info": raise_alert(db, level=None, host="WS03", at=T0 + timedelta(hours=4)),
        "foreign": raise_alert(db, tenant=OTHER_TENANT, level="critical", host="DC01", at=T0),
    }
    record(
        db,
        [
            detection(
                level="high",
                host="WS01",
                user="bob",
                title="PsExec",
                at=T0 + timedelta(hours=1, minutes=5),
            )
            for _ in range(2)
        ],
    )
    return out


def test_filters(tenant_db: Session, sample: dict[str, str]) -> None:
    s = sample
    assert set(_ids(tenant_db)) == {s["crit"], s["high"], s["med"], s["low"], s["info"]}
    assert _ids(tenant_db, severity=["critical", "low"], sort="severity") == [s["crit"], s["low"]]
    assert set(_ids(tenant_db, min_severity="high")) == {s["crit"], s["high"]}
    assert _ids(tenant_db, rule_id="rule-9") == [s["low"]]
    assert set(_ids(tenant_db, entity="ws01")) == {s["high"], s["low"]}
    assert _ids(tenant_db, entity="user=bob") == [s["high"]]
    assert _ids(tenant_db, q="mimi") == [s["crit"]]
    assert _ids(tenant_db, q="100%_") == [s["med"]]  # LIKE wildcards are literal
    assert _ids(tenant_db, q="0%") == [s["med"]]
    assert _ids(tenant_db, q="RULE-9") == [s["low"]]
    window = {"since": T0 + timedelta(hours=1, minutes=30), "until": T0 + timedelta(hours=3)}
    assert set(_ids(tenant_db, **window)) == {s["med"], s["low"]}
    # An alert active across the window boundary (first 1:00, last 1:05) counts for it.
    assert set(
        _ids(
            tenant_db,
            since=T0 + timedelta(hours=1, minutes=2),
            until=T0 + timedelta(hours=1, minutes=3),
        )
    ) == {s["high"]}
    lifecycle.update_alert(
        tenant_db,
        alert_id=s["med"],
        actor="user:x",
        now=T0,
        status=AlertStatus.RESOLVED,
        assignee="amy",
    )
    tenant_db.commit()
    assert _ids(tenant_db, status=["resolved"]) == [s["med"]]
    assert set(_ids(tenant_db, status=["new", "acknowledged"])) == {
        s["crit"],
        s["high"],
        s["low"],
        s["info"],
    }
    assert _ids(tenant_db, assignee="amy") == [s["med"]]


def test_sorts(tenant_db: Session, sample: dict[str, str]) -> None:
    s = sample
    by_time = [s["info"], s["low"], s["med"], s["high"], s["crit"]]
    assert _ids(tenant_db) == by_time
    assert _ids(tenant_db, order="asc") == by_time[::-1]
    assert _ids(tenant_db, sort="first_seen", order="asc") == by_time[::-1]
    assert _ids(tenant_db, sort="severity") == [s["crit"], s["high"], s["med"], s["low"], s["info"]]
    assert _ids(tenant_db, sort="count")[0] == s["high"]


@pytest.mark.parametrize("sort", list(AlertSort))
@pytest.mark.parametrize("order", list(SortOrder))
def test_pages_cover_everything_once(
    db: Session, tenant_db: Session, sort: AlertSort, order: SortOrder
) -> None:
    # Ties on every sort key (same time, level and count) so the id tie-break matters.
    dets = [
        detection(host=f"H{i}", level=["low", "high"][i % 2], at=T0 + timedelta(minutes=i // 3))
        for i in range(23)
    ]
    record(db, dets)
    everything = _ids(tenant_db, sort=sort, order=order, limit=500)
    assert len(everything) == 23
    seen: list[str] = []
    cursor = None
    while True:
        rows, cursor = list_alerts(
            tenant_db, query=AlertQuery(sort=sort, order=order, limit=5, cursor=cursor)
        )
        seen.extend(r.id for r in rows)
        if cursor is None:
            break
    assert seen == everything


def test_bad_cursors_are_input_errors(tenant_db: Session, sample: dict[str, str]) -> None:
    _, cursor = list_alerts(tenant_db, query=AlertQuery(limit=2))
    assert cursor is not None
    for bad in ["%%%", "bm90IGpzb24", base64.urlsafe_b64encode(b"[1]").decode()]:
        with pytest.raises(InvalidInputError) as info:
            list_alerts(tenant_db, query=AlertQuery(cursor=bad))
        assert info.value.field == "query.cursor"
    with pytest.raises(InvalidInputError, match="another sort"):
        list_alerts(tenant_db, query=AlertQuery(cursor=cursor, sort="count"))
    forged = orjson.loads(base64.urlsafe_b64decode(cursor + "=="))
    forged["v"] = "not a time"
    text = base64.urlsafe_b64encode(orjson.dumps(forged)).decode()
    with pytest.raises(InvalidInputError):
        list_alerts(tenant_db, query=AlertQuery(cursor=text))


def test_detail(db: Session, tenant_db: Session) -> None:
    dets = [
        detection(event_ids=[f"e{i}", "shared"], at=T0 + timedelta(seconds=i)) for i in range(3)
    ]
    [first, *_] = record(db, dets)
    lifecycle.update_alert(
        tenant_db, alert_id=first.alert_id, actor="user:x", now=T0, status=AlertStatus.ACKNOWLEDGED
    )
    lifecycle.add_comment(tenant_db, alert_id=first.alert_id, actor="user:x", body="hm", now=T0)
    tenant_db.commit()
    detail = alert_detail(tenant_db, alert_id=first.alert_id)
    assert detail.count == 3 and detail.status is AlertStatus.ACKNOWLEDGED
    assert detail.event_ids == ["e2", "shared", "e1", "e0"]
    assert [d.detection_id for d in detail.detections] == [d.detection_id for d in dets][::-1]
    assert [(t.kind, t.to_value) for t in detail.transitions] == [("status", "acknowledged")]
    assert [c.body for c in detail.comments] == ["hm"]
    assert detail.context["Computer"] == "WS01"
    assert detail.incident_id is not None  # high severity: grouped into an incident


def test_other_tenant_is_invisible(db: Session, tenant_db: Session) -> None:
    foreign = raise_alert(db, tenant=OTHER_TENANT)
    assert foreign not in _ids(tenant_db)
    with pytest.raises(NotFoundError):
        alert_detail(tenant_db, alert_id=foreign)
