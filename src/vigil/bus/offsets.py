"""Committed consumer offsets: a consumer advances its offset in the transaction of its work,
so a crash replays exactly the uncommitted part."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.bus.models import ConsumerOffset


def get(session: Session, *, name: str) -> int:
    value = session.execute(
        select(ConsumerOffset.position).where(ConsumerOffset.name == name)
    ).scalar_one_or_none()
    return int(value) if value is not None else 0


def advance(session: Session, *, name: str, position: int) -> None:
    """Set ``name``'s offset to ``position`` (in the caller's transaction)."""
    row = session.get(ConsumerOffset, name, with_for_update=True)
    now = datetime.now(UTC)
    if row is None:
        session.add(ConsumerOffset(name=name, position=position, updated_at=now))
    else:
        row.position = position
        row.updated_at = now
    session.flush()
