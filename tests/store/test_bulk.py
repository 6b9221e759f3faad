"""store.bulk.insert_rows: the SQLite driver-level path stores what SQLAlchemy Core stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, Boolean, DateTime, Integer, String, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from vigil.alerts.types import UtcDateTime
from vigil.store import create_engine_for, session_factory
from vigil.store.bulk import insert_rows


class _Base(DeclarativeBase):
    pass


class Sample(_Base):
    __tablename__ = "bulk_sample"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    flag: Mapped[bool] = mapped_column(Boolean, nullable=False)
    count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), nullable=False)
    plain_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    note: Mapped[str] = mapped_column(String(20), nullable=False, default="python default")


TWO_HOURS_EAST = timezone(timedelta(hours=2))


def _rows(prefix: str) -> list[dict[str, Any]]:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    return [
        {
            "id": f"{prefix}1",
            "flag": True,
            "count": 3,
            "at": at,
            "plain_at": at,
            "data": {"a": [1, 2.5, None], "b": "é", "n": 2**70},
            "note": "given",
        },
        {
            "id": f"{prefix}2",
            "flag": False,
            "count": None,
            "at": at.astimezone(TWO_HOURS_EAST),
            "plain_at": None,
            "data": None,
            "note": "given",
        },
    ]


@pytest.fixture()
def session(tmp_path: Path) -> Any:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'bulk.db'}")
    _Base.metadata.create_all(engine)
    with session_factory(engine)() as s:
        yield s
    engine.dispose()


def _stored(session: Session, prefix: str) -> list[tuple[Any, ...]]:
    rows = session.execute(
        select(Sample.flag, Sample.count, Sample.at, Sample.plain_at, Sample.data, Sample.note)
        .where(Sample.id.startswith(prefix))
        .order_by(Sample.id)
    ).all()
    return [tuple(r) for r in rows]


def test_fast_path_reads_back_like_core(session: Session) -> None:
    insert_rows(session, Sample, _rows("fast"))
    session.connection().execute(insert(Sample.__table__), _rows("core"))
    fast, core = _stored(session, "fast"), _stored(session, "core")
    assert fast == core
    assert fast[1][2] == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert fast[0][4] == {"a": [1, 2.5, None], "b": "é", "n": 2**70}


def test_a_missing_column_with_a_python_default_still_gets_it(session: Session) -> None:
    rows = [{k: v for k, v in row.items() if k != "note"} for row in _rows("d")]
    insert_rows(session, Sample, rows)
    assert [r[5] for r in _stored(session, "d")] == ["python default", "python default"]


def test_on_conflict_do_nothing_skips_only_the_existing_rows(session: Session) -> None:
    insert_rows(session, Sample, _rows("c")[:1])
    again = _rows("c")
    again[0]["count"] = 99
    insert_rows(session, Sample, again, on_conflict_do_nothing=("id",))
    assert [r[1] for r in _stored(session, "c")] == [3, None]
