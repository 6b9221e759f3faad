"""Revocations that reach running servers from outside them: the CLI, or a replica with no Redis.

Every identity change that must end or narrow cached credentials (a key revoked or rotated, a
user's status, roles, team or password changed, a custom role or access rule changed, the tenant's
settings changed, a refresh token replayed) moves one counter, ``identity_epoch.epoch``, in the
same transaction (:func:`note`, called by :func:`vigil.identity.audit.record`). Each serving
process reads the counter at most once per ``revocation_check_interval_s`` (one primary-key
look-up, on the authentication path, so an idle server costs nothing: while a reading is due,
the event loop's cache-only look-up declines and the request authenticates in a worker thread,
which reads it) and flushes its key, session and decision caches when it moved
(:class:`EpochWatcher`).

So ``vigil keys revoke`` or ``vigil users disable`` stop a credential on a running server within
about a second. The serving process that made a change still publishes the precise invalidation
at once on its revocation bus (and to the other replicas over Redis when configured); the CLI
publishes what it changed on Redis too (:func:`publish_pending`), so replicas that listen there
do not even wait for the epoch.

The counter is bumped just before the transaction commits, after the change's own rows are
written, so it is the last lock a revoking transaction takes (no lock-order deadlocks).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from vigil.identity.invalidation import Invalidation
from vigil.identity.models import IdentityEpoch
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.identity.revocations")

EPOCH_ROW = 1
_ARMED = "vigil.identity.epoch_armed"
_PENDING = "vigil.identity.invalidations"


def note(session: Session, invalidation: Invalidation) -> None:
    """Record that this transaction revokes or changes credentials: the epoch moves when it
    commits, and :func:`pending` lists ``invalidation`` afterwards."""
    session.info.setdefault(_PENDING, []).append(invalidation)
    if not session.info.get(_ARMED):
        session.info[_ARMED] = True
        event.listen(session, "before_commit", _bump, once=True)


def _bump(session: Session) -> None:
    session.info[_ARMED] = False
    stamp = datetime.now(UTC)
    moved = session.execute(
        update(IdentityEpoch)
        .where(IdentityEpoch.id == EPOCH_ROW)
        .values(epoch=IdentityEpoch.epoch + 1, changed_at=stamp)
    )
    if getattr(moved, "rowcount", 1) == 0:
        # A database made without the migrations' seed row (create_all in tests).
        try:
            with session.begin_nested():
                session.add(IdentityEpoch(id=EPOCH_ROW, epoch=1, changed_at=stamp))
        except IntegrityError:
            _bump(session)


def pending(session: Session) -> list[Invalidation]:
    """The invalidations noted in ``session`` so far (and forgets them)."""
    items: list[Invalidation] = session.info.pop(_PENDING, [])
    return items


def read_epoch(session: Session) -> int:
    value = session.execute(
        select(IdentityEpoch.epoch).where(IdentityEpoch.id == EPOCH_ROW)
    ).scalar_one_or_none()
    return int(value or 0)


def publish_pending(session: Session, redis_url: str | None) -> int:
    """After commit: send what ``session`` revoked on the replicas' Redis channel (if any).
    Returns how many invalidations were sent; failures are logged (the epoch still holds)."""
    items = pending(session)
    if not items or not redis_url:
        return 0
    from vigil.identity.broadcast import publish_once

    sent = 0
    for item in items:
        sent += int(publish_once(redis_url, item))
    return sent


class EpochWatcher:
    """Reads the epoch at most every ``interval_s`` and calls ``deliver`` with "everything" when
    it moved. ``check`` never raises and never blocks on another thread's check."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        deliver: Callable[[Invalidation], None],
        interval_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.deliver = deliver
        self.interval_s = interval_s
        self._seen: int | None = None
        self._next = 0.0
        self._lock = threading.Lock()
        self.flushes = 0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def check(self) -> None:
        if not self.due() or not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now < self._next:
                return
            self._next = now + self.interval_s
            session = system_session(self.sessions)
            try:
                epoch = read_epoch(session)
            finally:
                session.close()
            if epoch != self._seen:
                # The first reading flushes too: nothing cached before it can be trusted.
                if self._seen is not None:
                    self.flushes += 1
                self._seen = epoch
                self.deliver(Invalidation(everything=True))
        except Exception:
            # Credentials stay subject to their cache TTL; the next check tries again.
            log.exception("could not read the revocation epoch")
        finally:
            self._lock.release()
