"""The delivery log and the dead-letter list (tenant-scoped reads, manual retry).

Pages are ordered newest first by (created_at, id) and continue with an opaque cursor, so new
deliveries arriving while a client pages never shift or repeat items.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from vigil.errors import InvalidInputError, NotFoundError
from vigil.identity.principal import Principal
from vigil.ledger import service as ledger
from vigil.notify.models import (
    AttemptOutcome,
    ChannelType,
    DeliveryKind,
    DeliveryStatus,
    NotificationAttempt,
    NotificationDelivery,
)
from vigil.notify.schemas import (
    AttemptRead,
    DeadLetterRetry,
    DeliveryPage,
    DeliveryRead,
    RetryResult,
)
from vigil.obs.logging import REQUEST_ID

MAX_PAGE = 500


def encode_cursor(created_at: datetime, delivery_id: str) -> str:
    raw = orjson.dumps([created_at.astimezone(UTC).isoformat(), delivery_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, did = orjson.loads(raw)
        parsed = datetime.fromisoformat(when)
        if not isinstance(did, str) or parsed.tzinfo is None:
            raise ValueError("bad cursor")
        return parsed, did
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise InvalidInputError("invalid cursor", field="query.cursor") from exc


def _attempt_read(a: NotificationAttempt) -> AttemptRead:
    return AttemptRead(
        number=a.number,
        started_at=a.started_at,
        duration_ms=a.duration_ms,
        outcome=AttemptOutcome(a.outcome),
        status_code=a.status_code,
        reply=a.reply,
        error=a.error,
        retry_at=a.retry_at,
    )


def _delivery_read(d: NotificationDelivery, attempts: list[AttemptRead]) -> DeliveryRead:
    return DeliveryRead(
        id=d.id,
        event_id=d.event_id,
        channel_id=d.channel_id,
        channel_type=ChannelType(d.channel_type),
        event_type=d.event_type,
        severity=d.severity,  # type: ignore[arg-type]
        kind=DeliveryKind(d.kind),
        status=DeliveryStatus(d.status),
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        last_outcome=AttemptOutcome(d.last_outcome) if d.last_outcome else None,
        last_error=d.last_error,
        last_status_code=d.last_status_code,
        created_at=d.created_at,
        updated_at=d.updated_at,
        delivered_at=d.delivered_at,
        dead_at=d.dead_at,
        attempt_log=attempts,
    )


def _reads(session: Session, rows: Sequence[NotificationDelivery]) -> list[DeliveryRead]:
    by_delivery: dict[str, list[AttemptRead]] = {d.id: [] for d in rows}
    if rows:
        attempts = session.scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id.in_(list(by_delivery)))
            .order_by(NotificationAttempt.delivery_id, NotificationAttempt.number)
        ).all()
        for a in attempts:
            by_delivery[a.delivery_id].append(_attempt_read(a))
    return [_delivery_read(d, by_delivery[d.id]) for d in rows]


def get_delivery(session: Session, *, delivery_id: str) -> DeliveryRead:
    row = session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.id == delivery_id)
    ).one_or_none()
    if row is None:
        raise NotFoundError(f"delivery {delivery_id} not found")
    return _reads(session, [row])[0]


def list_deliveries(
    session: Session,
    *,
    channel_id: str | None = None,
    status: DeliveryStatus | None = None,
    event_id: str | None = None,
    kind: DeliveryKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> DeliveryPage:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInputError(f"limit must be 1..{MAX_PAGE}", field="query.limit")
    stmt = select(NotificationDelivery)
    if channel_id is not None:
        stmt = stmt.where(NotificationDelivery.channel_id == channel_id)
    if status is not None:
        stmt = stmt.where(NotificationDelivery.status == status.value)
    if event_id is not None:
        stmt = stmt.where(NotificationDelivery.event_id == event_id)
    if kind is not None:
        stmt = stmt.where(NotificationDelivery.kind == kind.value)
    if since is not None:
        stmt = stmt.where(NotificationDelivery.created_at >= _aware(since))
    if until is not None:
        stmt = stmt.where(NotificationDelivery.created_at < _aware(until))
    if cursor:
        at, did = decode_cursor(cursor)
        stmt = stmt.where(
            or_(
                NotificationDelivery.created_at < at,
                and_(NotificationDelivery.created_at == at, NotificationDelivery.id < did),
            )
        )
    stmt = stmt.order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id.desc())
    rows = session.scalars(stmt.limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return DeliveryPage(items=_reads(session, rows), next_cursor=next_cursor)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def count_dead(session: Session) -> int:
    """Dead letters in every tenant the session can see (a system session: all)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(NotificationDelivery)
            .where(NotificationDelivery.status == DeliveryStatus.DEAD.value)
        )
        or 0
    )


def retry_dead_letters(
    session: Session,
    *,
    selection: DeadLetterRetry,
    principal: Principal,
    now: datetime | None = None,
) -> RetryResult:
    """Put dead letters back in the queue with a fresh attempt budget (due now)."""
    stmt = select(NotificationDelivery.id).where(
        NotificationDelivery.status == DeliveryStatus.DEAD.value
    )
    if selection.ids is not None:
        stmt = stmt.where(NotificationDelivery.id.in_(selection.ids))
    elif selection.channel_id is not None:
        stmt = stmt.where(NotificationDelivery.channel_id == selection.channel_id)
    ids = list(session.scalars(stmt.order_by(NotificationDelivery.created_at)))
    if not ids:
        return RetryResult(retried=0, ids=[])
    when = now or datetime.now(UTC)
    # The tenant scope applies to this ORM UPDATE too; the ids were selected in scope anyway.
    session.execute(
        update(NotificationDelivery)
        .where(
            NotificationDelivery.id.in_(ids),
            NotificationDelivery.status == DeliveryStatus.DEAD.value,
        )
        .values(
            status=DeliveryStatus.PENDING.value,
            round_attempts=0,
            next_attempt_at=when,
            dead_at=None,
            updated_at=when,
        )
        .execution_options(synchronize_session=False)
    )
    change: dict[str, Any] = {"count": len(ids), "ids": ids[:1000]}
    if selection.channel_id is not None:
        change["channel_id"] = selection.channel_id
    target = f"delivery:{ids[0]}" if len(ids) == 1 else f"deliveries:{len(ids)}"
    ledger.append(
        session,
        tenant=principal.tenant_id,
        actor=principal.actor,
        action="notify.dead_letter.retry",
        target=target,
        request_id=REQUEST_ID.get(),
        change=change,
    )
    return RetryResult(retried=len(ids), ids=ids)


def retry_one(
    session: Session, *, delivery_id: str, principal: Principal, now: datetime | None = None
) -> DeliveryRead:
    row = session.scalars(
        select(NotificationDelivery).where(NotificationDelivery.id == delivery_id)
    ).one_or_none()
    if row is None or row.status != DeliveryStatus.DEAD.value:
        raise NotFoundError(f"dead letter {delivery_id} not found")
    retry_dead_letters(
        session, selection=DeadLetterRetry(ids=[delivery_id]), principal=principal, now=now
    )
    session.expire(row)
    return get_delivery(session, delivery_id=delivery_id)


#: Deliveries that will not change any more (dead letters are kept: they wait for a person).
FINISHED = (
    DeliveryStatus.DELIVERED.value,
    DeliveryStatus.FAILED.value,
    DeliveryStatus.CANCELLED.value,
)


def purge_finished(session: Session, *, before: datetime, batch: int = 5000) -> int:
    """Delete finished deliveries (and their attempts) last changed before ``before``."""
    removed = 0
    while True:
        ids = list(
            session.scalars(
                select(NotificationDelivery.id)
                .where(
                    NotificationDelivery.status.in_(FINISHED),
                    NotificationDelivery.updated_at < before,
                )
                .limit(batch)
            )
        )
        if not ids:
            return removed
        session.execute(
            delete(NotificationAttempt)
            .where(NotificationAttempt.delivery_id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        session.execute(
            delete(NotificationDelivery)
            .where(NotificationDelivery.id.in_(ids))
            .execution_options(synchronize_session=False)
        )
        removed += len(ids)
