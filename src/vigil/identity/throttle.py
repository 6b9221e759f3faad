"""Brute-force protection for password (and second-factor) attempts.

Failures are counted per *scope*: the account as typed (``acct:<tenant>:<email>``, so unknown
accounts back off exactly like real ones) and the source address (``addr:<ip>``). From
``threshold`` failures on, each further failure blocks the scope for
``base * 2**(failures - threshold)`` seconds, capped at ``max``; failures older than the window
are forgotten. A success clears the account scope (not the address: one valid login must not
whitewash an address that is guessing at many accounts). The table is shared, so every replica
sees the same counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vigil.identity.models import LoginThrottle
from vigil.identity.service import as_utc


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    threshold: int
    base_s: float
    max_s: float
    window_s: float

    def block_for(self, failures: int) -> float:
        if failures < self.threshold:
            return 0.0
        exponent = min(failures - self.threshold, 30)
        return float(min(self.max_s, self.base_s * (2**exponent)))


def account_scope(tenant: str, email: str) -> str:
    return f"acct:{tenant.lower()}:{email.strip().lower()}"[:450]


def address_scope(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


def blocked_for(session: Session, *, scopes: list[str], now: datetime) -> float:
    """Seconds until every scope is unblocked (0: go ahead)."""
    rows = session.execute(select(LoginThrottle).where(LoginThrottle.scope.in_(scopes))).scalars()
    longest = 0.0
    for row in rows:
        until = as_utc(row.blocked_until)
        if until is not None and until > now:
            longest = max(longest, (until - now).total_seconds())
    return longest


def record_failure(
    session: Session, *, scope: str, policy: ThrottlePolicy, now: datetime
) -> tuple[int, datetime | None]:
    """Count one failure; returns (failures in the window, blocked until or None)."""
    for _attempt in range(2):
        row = session.get(LoginThrottle, scope, with_for_update=True)
        if row is None:
            row = LoginThrottle(scope=scope, failures=0, last_failure_at=now)
            try:
                with session.begin_nested():
                    session.add(row)
                    session.flush()
            except IntegrityError:
                continue  # another request created it: read theirs
        last = as_utc(row.last_failure_at)
        if last is not None and (now - last).total_seconds() > policy.window_s:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        block = policy.block_for(row.failures)
        row.blocked_until = now + timedelta(seconds=block) if block else None
        return row.failures, row.blocked_until
    return 0, None


def clear(session: Session, *, scope: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == scope))
