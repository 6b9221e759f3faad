"""Keyset pagination with opaque cursors (used by the alert and incident lists).

A page is ordered by one sort column and then the row id (unique), both in the same direction;
the cursor holds the last row's sort value and id, so the next page starts strictly after it
whatever was inserted meanwhile (no skipped or repeated rows, no OFFSET scans). The cursor is
base64url JSON naming the sort and direction it was made for: using it with another sort is an
error rather than a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from vigil.alerts.types import as_utc
from vigil.errors import InvalidInputError

T = TypeVar("T")

CURSOR_FIELD = "query.cursor"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


@dataclass(frozen=True, slots=True)
class Keyset:
    name: str
    column: InstrumentedAttribute[Any]
    id_column: InstrumentedAttribute[str]
    order: SortOrder
    value_type: type
    """``datetime``, ``int`` or ``str``: what a cursor value for this column must be."""


def encode_cursor(keyset: Keyset, value: Any, row_id: str) -> str:
    if isinstance(value, datetime):
        value = {"t": as_utc(value).isoformat()}
    raw = orjson.dumps({"s": keyset.name, "o": keyset.order.value, "v": value, "i": row_id})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(keyset: Keyset, cursor: str) -> tuple[Any, str]:
    invalid = InvalidInputError("the cursor is not valid", field=CURSOR_FIELD)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise invalid from exc
    if not isinstance(data, dict):
        raise invalid
    if data.get("s") != keyset.name or data.get("o") != keyset.order.value:
        raise InvalidInputError(
            "the cursor belongs to another sort order; repeat the sort and order it came with",
            field=CURSOR_FIELD,
        )
    value, row_id = data.get("v"), data.get("i")
    if isinstance(value, dict):
        try:
            value = as_utc(datetime.fromisoformat(str(value["t"])))
        except (KeyError, ValueError) as exc:
            raise invalid from exc
    if (
        not isinstance(row_id, str)
        or isinstance(value, bool)
        or not isinstance(value, keyset.value_type)
        or (isinstance(value, int) and abs(value) > 2**62)
    ):
        raise invalid
    return value, row_id


def page(
    session: Session,
    stmt: Select[tuple[T]],
    *,
    keyset: Keyset,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[T], str | None]:
    """One page of ``stmt`` (which selects one ORM entity) and the cursor of the next page."""
    column, id_column = keyset.column, keyset.id_column
    if cursor:
        value, row_id = decode_cursor(keyset, cursor)
        if keyset.order is SortOrder.DESC:
            after = or_(column < value, and_(column == value, id_column < row_id))
        else:
            after = or_(column > value, and_(column == value, id_column > row_id))
        stmt = stmt.where(after)
    if keyset.order is SortOrder.DESC:
        stmt = stmt.order_by(column.desc(), id_column.desc())
    else:
        stmt = stmt.order_by(column.asc(), id_column.asc())
    rows = session.scalars(stmt.limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(keyset, getattr(last, column.key), getattr(last, id_column.key))
