"""Wire the metering domain onto a runtime: the buffered meter (``runtime.extras["meter"]``),
its flush worker, quota cache invalidation and the API-call counting middleware.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.metering.meter import METER_KEY
from vigil.metering.middleware import UsageMiddleware
from vigil.metering.service import BufferedMeter, QuotaSource
from vigil.runtime import LoopWorker

if TYPE_CHECKING:
    from vigil.runtime import Runtime


class FlushWorker(LoopWorker):
    """Flushes the meter every interval, and once more when stopped (no counts lost on a clean
    shutdown)."""

    def __init__(self, meter: BufferedMeter, interval_s: float) -> None:
        def step() -> float:
            meter.flush()
            return interval_s

        super().__init__("usage-flush", step, error_backoff=interval_s)
        self.meter = meter

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        try:
            self.meter.flush()
        except Exception:  # already logged by the loop on earlier failures
            self.last_error = "final flush failed"

    def status(self) -> dict[str, Any]:
        return {**super().status(), "pending_counters": len(self.meter.pending())}


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    settings = runtime.settings.metering
    if not settings.enabled:
        return
    quotas = QuotaSource(runtime.sessions)
    meter = BufferedMeter(
        sessions=runtime.sessions, quotas_of=quotas, quota_refresh_s=settings.quota_refresh_s
    )
    runtime.extras[METER_KEY] = meter
    # Every process counts (API replicas too), so every process flushes its own counts.
    runtime.workers.append(FlushWorker(meter, settings.flush_interval_s))
    identity = runtime.extras.get("identity")
    if identity is not None:
        identity.bus.subscribe(lambda inv: quotas.forget(inv.tenant_ids, everything=inv.everything))
    if role != "worker" and settings.count_api_calls:
        runtime.extras.setdefault("asgi_middleware", []).append(UsageMiddleware)
