"""Dead letters of the event queue: records the workers gave up on, listed per tenant and put back
on the queue by an operator.

Only the Redis Streams queue dead-letters (:mod:`vigil.bus.redis_queue`: a record that keeps
failing moves to ``vigil:events:dead`` with its error). The embedded SQL queue has no such
notion: a failing batch is retried in place until it succeeds, so its list is always empty
(``dead_lettering`` false) and every replay is a 404.

Both moves are audit-relevant and land in the ledger: ``queue.dead_letter`` (actor
``system:queue``) when a worker buries a record, ``queue.dead_letter.replay`` (the caller) when
an operator replays one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session, sessionmaker

from vigil.errors import NotFoundError
from vigil.identity.principal import Principal
from vigil.ledger import service as ledger
from vigil.obs.logging import REQUEST_ID
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.queue")

#: How the ledger names the queue when it acts by itself (burying a record).
AUDIT_ACTOR = "system:queue"
DEAD_LETTER_ACTION = "queue.dead_letter"
REPLAY_ACTION = "queue.dead_letter.replay"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    tenant_id: str
    event_id: str | None
    accepted_at: datetime
    #: the stream id the record was first accepted as (its identity: detection ids hang on it)
    origin: str
    #: deliveries that failed before the record was buried
    deliveries: int
    error: str
    consumer: str
    dead_at: datetime
    payload: bytes


#: stream entries one page of the dead-letter list reads at most, whatever it finds: a tenant
#: with few dead letters among many of other tenants pages through them (the cursor is the last
#: entry read) instead of one request reading the whole stream
PAGE_SCAN = 500


@runtime_checkable
class DeadLetterQueue(Protocol):
    """What a queue that dead-letters offers (the Redis Streams queue)."""

    def dead_letter_page(
        self, *, tenant_id: str | None, after: str | None, limit: int, scan: int
    ) -> tuple[list[DeadLetter], str | None]: ...

    def dead_letter(self, dead_id: str, *, tenant_id: str | None) -> DeadLetter: ...

    def replay_dead_letter(self, dead_id: str, *, tenant_id: str | None) -> str: ...


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    items: list[DeadLetter]
    #: pass as ``after`` for the next page; None on the last page
    next_after: str | None
    #: False when the queue never dead-letters (the embedded SQL queue)
    dead_lettering: bool


@dataclass(frozen=True, slots=True)
class Replayed:
    id: str
    replayed_as: str
    event_id: str | None


def _dead_letter_queue(queue: object) -> DeadLetterQueue | None:
    return queue if isinstance(queue, DeadLetterQueue) else None


def list_dead_letters(
    *, queue: object, tenant_id: str, after: str | None, limit: int
) -> DeadLetterPage:
    """``tenant_id``'s dead letters, oldest first, after the stream id ``after``. A page may
    hold fewer than ``limit`` (even none) while ``next_after`` is set: it read ``PAGE_SCAN``
    entries of the stream and stopped there."""
    source = _dead_letter_queue(queue)
    if source is None:
        return DeadLetterPage(items=[], next_after=None, dead_lettering=False)
    # One more than asked: finding it tells that there is a next page.
    items, cursor = source.dead_letter_page(
        tenant_id=tenant_id, after=after, limit=limit + 1, scan=PAGE_SCAN
    )
    if len(items) > limit:
        items = items[:limit]
        cursor = items[-1].id
    return DeadLetterPage(items=items, next_after=cursor, dead_lettering=True)


def replay(*, session: Session, queue: object, principal: Principal, dead_id: str) -> Replayed:
    """Put the caller's dead letter ``dead_id`` back on the queue and commit its ledger entry
    in ``session``. NotFoundError for an unknown id or another tenant's.

    Two systems, no shared transaction: the entry is appended (the ledger head locked) before
    Redis is touched and committed after, so a replay that fails leaves no entry; only a commit
    failing after a successful replay can leave one unrecorded, and that is logged."""
    source = _dead_letter_queue(queue)
    if source is None:
        raise NotFoundError(f"no dead letter {dead_id!r} (this queue does not dead-letter)")
    letter = source.dead_letter(dead_id, tenant_id=principal.tenant_id)
    ledger.append(
        session,
        tenant=principal.tenant_id,
        actor=principal.actor,
        action=REPLAY_ACTION,
        target=f"dead-letter:{letter.id}",
        request_id=REQUEST_ID.get(),
        change={
            "event_id": letter.event_id,
            "origin": letter.origin,
            "deliveries": letter.deliveries,
            "error": letter.error[:500],
        },
    )
    new_id = source.replay_dead_letter(dead_id, tenant_id=principal.tenant_id)
    try:
        session.commit()
    except Exception:
        log.error(
            "dead letter replayed but its ledger entry was not committed",
            extra={"id": letter.id, "replayed_as": new_id, "actor": principal.actor},
        )
        raise
    return Replayed(id=letter.id, replayed_as=new_id, event_id=letter.event_id)


def record_dead_letter(session: Session, letter: DeadLetter) -> None:
    """Record a burial in the ledger, in a transaction of its own on ``session``'s database
    (the worker's batch transaction may still roll back; the record is buried either way). The
    dead-letter stream keeps the record itself, so a failure here is logged, not raised."""
    try:
        with system_session(sessionmaker(bind=session.get_bind())) as audit:
            ledger.append(
                audit,
                tenant=letter.tenant_id,
                actor=AUDIT_ACTOR,
                action=DEAD_LETTER_ACTION,
                target=f"dead-letter:{letter.id}",
                change={
                    "event_id": letter.event_id,
                    "origin": letter.origin,
                    "deliveries": letter.deliveries,
                    "error": letter.error[:500],
                    "consumer": letter.consumer,
                },
            )
            audit.commit()
    except Exception:
        log.exception("could not record a dead letter in the ledger", extra={"id": letter.id})
