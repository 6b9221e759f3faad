"""``/v1/queue/dead-letters``: list the caller's dead letters and replay one; translate HTTP to
:mod:`vigil.bus.dead_letters` and back."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.bus import dead_letters
from vigil.bus.queue import queue_of
from vigil.bus.schemas import STREAM_ID_PATTERN, DeadLetterPage, DeadLetterRead, ReplayResult
from vigil.identity.principal import Permission, Principal

router = APIRouter(tags=["queue"])


def _record(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload.decode("utf-8", errors="replace")


def _read(letter: dead_letters.DeadLetter) -> DeadLetterRead:
    return DeadLetterRead(
        id=letter.id,
        event_id=letter.event_id,
        error=letter.error,
        attempts=letter.deliveries,
        dead_at=letter.dead_at,
        accepted_at=letter.accepted_at,
        consumer=letter.consumer,
        record=_record(letter.payload),
    )


@router.get(
    "/v1/queue/dead-letters",
    response_model=DeadLetterPage,
    summary="Records the workers gave up on (this tenant's), oldest first",
)
def list_dead_letters(
    request: Request,
    after: str | None = Query(
        default=None, pattern=STREAM_ID_PATTERN, description="next_after of the previous page."
    ),
    limit: int = Query(default=50, ge=1, le=500),
    principal: Principal = Depends(require(Permission.QUEUE_READ)),
) -> DeadLetterPage:
    page = dead_letters.list_dead_letters(
        queue=queue_of(get_runtime(request)),
        tenant_id=principal.tenant_id,
        after=after,
        limit=limit,
    )
    return DeadLetterPage(
        items=[_read(letter) for letter in page.items],
        next_after=page.next_after,
        limit=limit,
        dead_lettering=page.dead_lettering,
    )


@router.post(
    "/v1/queue/dead-letters/{dead_letter_id}/replay",
    response_model=ReplayResult,
    summary="Put a dead letter back on the queue (same identity: no duplicate detections)",
)
def replay_dead_letter(
    request: Request,
    dead_letter_id: str,
    principal: Principal = Depends(require(Permission.QUEUE_WRITE)),
    session: Session = Depends(tenant_db),
) -> ReplayResult:
    replayed = dead_letters.replay(
        session=session,
        queue=queue_of(get_runtime(request)),
        principal=principal,
        dead_id=dead_letter_id,
    )
    return ReplayResult(
        id=replayed.id, replayed_as=replayed.replayed_as, event_id=replayed.event_id
    )
