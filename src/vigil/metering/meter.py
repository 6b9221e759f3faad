"""The usage meter every domain reports to, and its quota check.

Domains ask :func:`meter_of` for the runtime's meter and call ``add`` (counted per tenant, hour
and day) and ``check_quota`` before accepting work. :class:`NullMeter` is the test double and the
default when metering is not wired.

Detections and alerts are not counted here: the detection worker (often a child process with no
meter) adds them in its own transaction with :func:`vigil.metering.service.count_committed`,
so they count exactly when they commit. Delivered notifications are counted by the sender.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vigil.runtime import Runtime


class Meter(Protocol):
    def add(self, tenant_id: str, metric: str, amount: int = 1, *, dimension: str = "") -> None:
        """Count ``amount`` of ``metric`` (e.g. "events", "event_bytes", "api_calls" with the
        route as ``dimension``) for the tenant, now."""
        ...

    def check_quota(self, tenant_id: str, metric: str, amount: int = 1) -> None:
        """Raise :class:`vigil.errors.QuotaExceededError` if adding ``amount`` would exceed the
        tenant's quota for ``metric``."""
        ...


class NullMeter:
    def add(self, tenant_id: str, metric: str, amount: int = 1, *, dimension: str = "") -> None:
        return None

    def check_quota(self, tenant_id: str, metric: str, amount: int = 1) -> None:
        return None


METER_KEY = "meter"


def meter_of(runtime: Runtime) -> Meter:
    meter: Meter = runtime.extras.get(METER_KEY) or NullMeter()
    return meter
