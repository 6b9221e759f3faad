"""``vigil.store.bulk.insert_rows`` writes what a Core ``INSERT`` of the same rows writes, on
both backends (SQLite: driver-level executemany; PostgreSQL: one ``unnest`` of column arrays)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, String, cast, insert, select
from sqlalchemy.orm import Session

from tests.alerts.helpers import detection, record
from vigil.alerts.models import Alert
from vigil.incidents.models import Incident, IncidentDraft
from vigil.store.bulk import insert_rows, table_of

NOW = datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)


def _rows(db: Session, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Every column of the alerts ``ids`` as the database renders it to text (what was stored,
    not what the ORM makes of it; JSON parsed: the encoders differ in whitespace), keyed by id."""
    table = table_of(Alert)
    others = [c for c in table.c if c.key != "id"]
    found = db.execute(
        select(table.c.id, *(cast(c, String) for c in others)).where(table.c.id.in_(ids))
    ).all()
    return {
        row[0]: tuple(
            json.loads(v) if isinstance(c.type, JSON) and v is not None else v
            for c, v in zip(others, row[1:], strict=True)
        )
        for row in found
    }


def test_insert_rows_stores_what_core_stores(db: Session) -> None:
    [out] = record(db, [detection(detection_id="model")], now=NOW)
    template = {
        c.key: value
        for c, value in zip(
            table_of(Alert).c,
            db.execute(select(table_of(Alert)).where(table_of(Alert).c.id == out.alert_id)).one(),
            strict=True,
        )
    }
    odd: list[dict[str, Any]] = [
        {"Big": 2**70, "Name": "Zoë", "nested": {"list": [1, None, "x"]}},
        {"quote": 'say "hi"\\ {braces}, commas', "empty": ""},
        {},
    ]
    rows: list[dict[str, Any]] = []
    for n, context in enumerate(odd):
        row = dict(template)
        row.update(
            id=f"00000000-0000-0000-0000-00000000000{n}",
            fingerprint=f"fp-{n}",
            context=context,
            tags=["a,b", 'c"d', "{e}"][: n + 1],
            first_seen=NOW - timedelta(microseconds=n),
            last_seen=NOW + timedelta(hours=n),
            title=f"title {n} ' \" \\ {{}} NULL",
        )
        rows.append(row)
    fast = rows
    core = [{**r, "id": r["id"].replace("0000-0000-0000", "1111-1111-1111")} for r in rows]
    core = [{**r, "fingerprint": r["fingerprint"] + "-core"} for r in core]
    insert_rows(db, Alert, fast)
    db.connection().execute(insert(table_of(Alert)), core)
    stored = _rows(db, [r["id"] for r in fast + core])
    fingerprint_at = [c.key for c in table_of(Alert).c if c.key != "id"].index("fingerprint")
    for a, b in zip(fast, core, strict=True):
        left, right = list(stored[a["id"]]), list(stored[b["id"]])
        assert right[fingerprint_at] == left[fingerprint_at] + "-core"
        left[fingerprint_at] = right[fingerprint_at] = None
        assert left == right


def test_a_column_of_nulls_and_a_single_row(db: Session) -> None:
    # PostgreSQL must still find the element type of an all-NULL array (the CAST names it);
    # one row takes the plain Core path.
    draft = IncidentDraft(
        id="11111111-2222-3333-4444-555555555555",
        tenant_id="t",
        title="x",
        description=None,
        severity="high",
        severity_rank=3,
        status="open",
        owner=None,
        entity="e",
        entity_key=None,
        correlation_id=None,
        alert_count=0,
        opened_by="me",
        opened_at=NOW,
        updated_at=NOW,
        last_alert_at=NOW,
        acknowledged_at=None,
        resolved_at=None,
        closed_at=None,
        ack_due_at=NOW,
        resolve_due_at=NOW,
        ack_breached=False,
        resolve_breached=True,
        root_cause=None,
        lessons_learned=None,
        follow_ups=[],
    )
    second = IncidentDraft(**{**draft.row(), "id": draft.id[:-1] + "6", "follow_ups": [{"a": 1}]})
    insert_rows(db, Incident, [draft.row(), second.row()])
    insert_rows(db, Incident, [IncidentDraft(**{**draft.row(), "id": draft.id[:-1] + "7"}).row()])
    db.expire_all()
    found = {i.id: i for i in db.scalars(select(Incident))}
    assert len(found) == 3
    for incident in found.values():
        assert incident.description is None and incident.acknowledged_at is None
        assert incident.opened_at == NOW and incident.resolve_breached is True
        assert incident.ack_breached is False and incident.severity_rank == 3
    assert found[second.id].follow_ups == [{"a": 1}] and found[draft.id].follow_ups == []
