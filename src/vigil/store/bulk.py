"""Bulk inserts on the session's connection, cheap on SQLite.

The detection path writes thousands of rows per batch (alerts, their detections, incident links,
timeline items, outbox events). Through SQLAlchemy Core each value goes through its bind
processing (stdlib JSON, datetime formatting) and each row through parameter bookkeeping, which
profiling showed to be the largest part of writing those rows on SQLite. :func:`insert_rows`
encodes a column at a time here instead (orjson for JSON, one ISO formatting for UTC times, the
type's own bind processor for everything else) and runs one ``executemany`` on the driver.
On PostgreSQL a Core ``executemany`` (which psycopg pipelines) still costs a statement, its
parameter bookkeeping and adaptation per row: there the rows go as one array per column into
one ``INSERT ... SELECT FROM unnest(...)``, a single statement and round trip per call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import ARRAY, JSON, Column, Table, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

Encoder = Callable[[Any], Any]


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class (for bulk statements that bypass the ORM)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def sqlite_utc_text(value: datetime | None) -> str | None:
    """What :class:`vigil.alerts.types.UtcDateTime` stores on SQLite: the naive UTC ISO text
    (sortable), as SQLAlchemy's SQLite DATETIME would write it."""
    if value is None:
        return None
    if value.tzinfo is not None and value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


def json_text(value: Any) -> str:
    # Non-string keys become strings, as the stdlib encoder SQLAlchemy uses would make them;
    # what orjson refuses (integers beyond 64 bits) goes to that encoder.
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def _insertable(table: Table, keys: tuple[str, ...]) -> list[Column[Any]] | None:
    """The columns of ``keys``; None when a driver-level insert of them would not insert what
    Core inserts (an unknown key, a missing column with a Python-side default)."""
    columns = []
    for key in keys:
        if key not in table.c:
            return None
        columns.append(table.c[key])
    for column in table.c:
        if column.key not in keys and column.default is not None:
            return None
    return columns


@lru_cache(maxsize=256)
def _sqlite_plan(
    table: Table, keys: tuple[str, ...], dialect: Dialect, conflict: tuple[str, ...]
) -> tuple[str, list[Encoder | None]] | None:
    """The driver-level INSERT of ``keys`` into ``table`` and each key's encoder (None: bound as
    it is); None when the fast path would not insert what Core inserts (a missing column with a
    Python-side default, an unknown key)."""
    columns = _insertable(table, keys)
    if columns is None:
        return None
    encoders: list[Encoder | None] = []
    for column in columns:
        column_type = column.type
        # A column type can name its own SQLite encoder (vigil.alerts.types.UtcDateTime does).
        own = getattr(column_type, "sqlite_encoder", None)
        if own is not None:
            encoders.append(own)
        elif isinstance(column_type, JSON) and not isinstance(column_type, TypeDecorator):
            encoders.append(json_text)
        else:
            encoders.append(column_type.dialect_impl(dialect).bind_processor(dialect))
    prep = dialect.identifier_preparer
    names = ", ".join(prep.format_column(c) for c in columns)
    sql = f"INSERT INTO {prep.format_table(table)} ({names}) VALUES ({', '.join('?' * len(keys))})"
    if conflict:
        target = ", ".join(prep.format_column(table.c[key]) for key in conflict)
        sql += f" ON CONFLICT ({target}) DO NOTHING"
    return sql, encoders


@lru_cache(maxsize=256)
def _postgresql_plan(
    table: Table, keys: tuple[str, ...], dialect: Dialect, conflict: tuple[str, ...]
) -> tuple[str, list[Encoder | None]] | None:
    """The ``INSERT ... SELECT FROM unnest(%s::type[], ...)`` of ``keys`` into ``table`` and
    each key's encoder; None where Core would insert something else (as :func:`_sqlite_plan`)."""
    columns = _insertable(table, keys)
    if columns is None:
        return None
    encoders: list[Encoder | None] = []
    arrays: list[str] = []
    for column in columns:
        column_type = column.type
        if isinstance(column_type, ARRAY):
            return None  # unnest would flatten an array of arrays
        if isinstance(column_type, JSON) and not isinstance(column_type, TypeDecorator):
            # JSON text in a text[], cast element-wise: the driver cannot adapt a list of
            # JSON values as a json[] by itself.
            encoders.append(json_text)
        else:
            impl = column_type.dialect_impl(dialect)
            if isinstance(impl, JSON):
                return None
            encoders.append(impl.bind_processor(dialect))
        arrays.append(f"CAST(%b AS {column_type.compile(dialect=dialect)}[])")
    prep = dialect.identifier_preparer
    names = ", ".join(prep.format_column(c) for c in columns)
    sql = (
        f"INSERT INTO {prep.format_table(table)} ({names}) "
        f"SELECT * FROM unnest({', '.join(arrays)})"
    )
    if conflict:
        target = ", ".join(prep.format_column(table.c[key]) for key in conflict)
        sql += f" ON CONFLICT ({target}) DO NOTHING"
    return sql, encoders


def _columns(rows: Sequence[dict[str, Any]], encoders: list[Encoder | None]) -> list[list[Any]]:
    """The values of ``rows`` a column at a time, each through its key's encoder."""
    values = []
    for key, encode in zip(rows[0], encoders, strict=True):
        column = [row[key] for row in rows]
        values.append(column if encode is None else list(map(encode, column)))
    return values


def insert_rows(
    session: Session,
    model: type[Any],
    rows: Sequence[dict[str, Any]],
    *,
    on_conflict_do_nothing: tuple[str, ...] = (),
) -> None:
    """Insert ``rows`` (which share their keys) into ``model``'s table in the session's
    transaction, with one ``executemany``. Bypasses the ORM and its tenant stamping: the rows
    carry their ``tenant_id``. Flushes the session first, so pending ORM rows they refer to
    exist. ``on_conflict_do_nothing``: the unique columns whose conflict skips a row (SQLite
    and PostgreSQL ``ON CONFLICT (...) DO NOTHING``)."""
    if not rows:
        return
    session.flush()
    connection = session.connection()
    table = table_of(model)
    if connection.dialect.name == "sqlite":
        plan = _sqlite_plan(table, tuple(rows[0]), connection.dialect, on_conflict_do_nothing)
        if plan is not None:
            sql, encoders = plan
            values = _columns(rows, encoders)
            raw = connection.connection.dbapi_connection
            assert raw is not None
            cursor = raw.cursor()
            try:
                cursor.executemany(sql, list(zip(*values, strict=True)))
            finally:
                cursor.close()
            return
    if connection.dialect.name == "postgresql" and len(rows) > 1:
        plan = _postgresql_plan(table, tuple(rows[0]), connection.dialect, on_conflict_do_nothing)
        if plan is not None:
            sql, encoders = plan
            connection.exec_driver_sql(sql, tuple(_columns(rows, encoders)))
            return
    stmt: Any = insert(table)
    if on_conflict_do_nothing:
        dialects: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
        stmt = dialects[connection.dialect.name](table).on_conflict_do_nothing(
            index_elements=list(on_conflict_do_nothing)
        )
    connection.execute(stmt, list(rows))
