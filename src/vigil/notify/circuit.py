"""Retry and circuit-breaker policy: pure decisions, no I/O (the sender applies them).

Retries use exponential backoff with *full jitter*: attempt ``n`` (1-based) that failed waits a
uniformly random time in ``[0, min(cap, base * 2**(n-1))]``, which spreads retries of many
deliveries instead of synchronising them. A receiver's ``Retry-After`` is honoured (up to a cap)
when it asks for longer.

Each channel has a circuit breaker: ``threshold`` consecutive failures open it; while open, its
deliveries wait (no attempts are spent) until ``cooldown`` has passed; then exactly one delivery
is sent as a probe (half-open). Success closes the circuit, failure opens it for another cooldown.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from vigil.notify.models import CircuitState


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_s: float
    cap_s: float
    max_attempts: int
    retry_after_max_s: float = 3600.0

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based)."""
        exponent = min(max(attempt - 1, 0), 62)  # 2**62 * base is far past any cap
        return float(min(self.cap_s, self.base_s * (2**exponent)))

    def delay(
        self, attempt: int, rng: random.Random, *, retry_after_s: float | None = None
    ) -> float:
        wait = rng.uniform(0.0, self.ceiling(attempt))
        if retry_after_s is not None and retry_after_s > wait:
            wait = min(retry_after_s, self.retry_after_max_s)
        return wait

    def exhausted(self, round_attempts: int) -> bool:
        return round_attempts >= self.max_attempts


@dataclass(frozen=True, slots=True)
class CircuitPolicy:
    threshold: int
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class Circuit:
    state: CircuitState
    failures: int = 0
    opened_at: datetime | None = None
    retry_at: datetime | None = None

    def allows_send(self, now: datetime) -> bool:
        """Closed, or open/half-open with its probe time reached (a stale probe is retried)."""
        if self.state is CircuitState.CLOSED:
            return True
        return self.retry_at is not None and self.retry_at <= now

    def probing(self, now: datetime, probe_lease_s: float) -> Circuit:
        """The state while one probe is in flight; ``retry_at`` bounds a probe whose sender died."""
        return replace(
            self, state=CircuitState.HALF_OPEN, retry_at=now + timedelta(seconds=probe_lease_s)
        )

    def succeeded(self) -> Circuit:
        return Circuit(state=CircuitState.CLOSED)

    def failed(self, now: datetime, policy: CircuitPolicy) -> Circuit:
        failures = self.failures + 1
        if self.state is not CircuitState.CLOSED or failures >= policy.threshold:
            return Circuit(
                state=CircuitState.OPEN,
                failures=failures,
                opened_at=now if self.state is CircuitState.CLOSED else self.opened_at or now,
                retry_at=now + timedelta(seconds=policy.cooldown_s),
            )
        return replace(self, failures=failures)
