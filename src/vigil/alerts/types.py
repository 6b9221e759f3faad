"""Column types shared by the alerts and incidents tables.

:class:`UtcDateTime` exists because SQLite has no time zones: SQLAlchemy stores the wall-clock
text and hands back naive datetimes, while PostgreSQL hands back aware ones. Every value is
converted to UTC on the way in (a naive value is taken to be UTC already) and comes back aware,
so comparisons, sorting and cursors behave the same on both backends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from vigil.store.bulk import insert_rows, sqlite_utc_text, table_of


def as_utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True
    #: what :func:`vigil.store.bulk.insert_rows` binds on SQLite (the text this type stores)
    sqlite_encoder = staticmethod(sqlite_utc_text)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        utc = as_utc(value)
        # SQLite keeps the text form only; dropping the offset keeps that text sortable.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return as_utc(value)


def lock_keys(session: Session, namespace: str, keys: Iterable[str]) -> None:
    """Serialise concurrent transactions that work on the same ``keys`` (PostgreSQL).

    Two detection workers (scale-out) could otherwise both find no open alert for a fingerprint
    and both raise one, or both open an incident for one entity. Each key becomes a
    transaction-scoped advisory lock, taken in sorted order (so two batches cannot deadlock on
    each other) in one statement. SQLite needs nothing: it has one writer at a time and the
    embedded deployment runs one detection worker.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    ids = sorted(
        {
            int.from_bytes(hashlib.blake2b(f"{namespace}\x1f{k}".encode(), digest_size=8).digest())
            - 2**63
            for k in keys
        }
    )
    if ids:
        session.execute(
            text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:ids AS bigint[])) AS k"),
            {"ids": ids},
        )


__all__ = ["UtcDateTime", "as_utc", "insert_rows", "lock_keys", "table_of"]
