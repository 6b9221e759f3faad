"""Run side effects (metric increments) only once the transaction that caused them commits.

The pipeline records detections inside its own transaction, which may still roll back (a crash,
a conflict with another worker); counting an alert that then never existed would make the
metrics lie. Callbacks queued here run after the session's next commit and are dropped on
rollback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("vigil.alerts")

_KEY = "vigil.after_commit"


def _run(session: Session) -> None:
    callbacks: list[Callable[[], None]] = session.info.get(_KEY, [])
    pending = list(callbacks)
    callbacks.clear()
    for callback in pending:
        try:
            callback()
        except Exception:  # a metric must never break the caller's commit path
            log.exception("after-commit callback failed")


def _clear(session: Session) -> None:
    callbacks: list[Callable[[], None]] = session.info.get(_KEY, [])
    callbacks.clear()


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` after ``session`` commits its current transaction (never on rollback)."""
    callbacks: list[Callable[[], None]] | None = session.info.get(_KEY)
    if callbacks is None:
        callbacks = []
        session.info[_KEY] = callbacks
        event.listen(session, "after_commit", _run)
        event.listen(session, "after_rollback", _clear)
    callbacks.append(callback)
