"""Wire the incidents domain onto a runtime: the escalation worker (escalation steps and SLA
breaches) for the roles that run workers.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from vigil.incidents.escalation_worker import tick
from vigil.runtime import LoopWorker

if TYPE_CHECKING:
    from vigil.runtime import Runtime

WORKER_NAME = "escalation"


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    if role not in ("all", "worker"):
        return
    step = partial(tick, runtime.sessions, runtime.settings.incidents)
    runtime.workers.append(LoopWorker(WORKER_NAME, step, error_backoff=5.0))
