"""Wire the ingest domain onto a runtime: the event queue and its (critical) health probe.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.bus.queue import queue_of
from vigil.obs.health import Probe, register_probe
from vigil.obs.metrics import QUEUE_DEPTH, QUEUE_LAG_SECONDS

if TYPE_CHECKING:
    from vigil.runtime import Runtime


def queue_probe(runtime: Runtime) -> dict[str, Any]:
    """Usable (the queue table answers), depth and lag of the detection consumer."""
    stats = queue_of(runtime).stats(consumer=runtime.settings.pipeline.consumer)
    QUEUE_DEPTH.set(stats.depth)
    QUEUE_LAG_SECONDS.set(stats.lag_seconds)
    return {
        "ok": True,
        "usable": True,
        "depth": stats.depth,
        "lag_seconds": round(stats.lag_seconds, 3),
        "last_seq": stats.last_seq,
        "committed": stats.committed,
    }


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    queue_of(runtime)
    register_probe(runtime, Probe("queue", queue_probe, critical=True))
