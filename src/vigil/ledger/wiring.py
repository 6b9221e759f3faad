"""Wire the audit ledger onto a runtime: the scheduled checkpoint signer.

Every ``settings.audit_checkpoint_interval_s`` the signer signs a checkpoint when the log grew
(``sign_checkpoint`` is a no-op otherwise, and serialises through the ledger's head row, so
several worker replicas never sign two different checkpoints of one size).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from vigil.runtime import LoopWorker
from vigil.store import session_scope

if TYPE_CHECKING:
    from vigil.runtime import Runtime

log = logging.getLogger("vigil.ledger")


def checkpoint_signer(runtime: Runtime) -> LoopWorker:
    from vigil.ledger import service
    from vigil.ledger.keys import parse_configured_key

    settings = runtime.settings
    key = parse_configured_key(settings.audit_signing_key) if settings.audit_signing_key else None
    interval = settings.audit_checkpoint_interval_s

    def step() -> float:
        with session_scope(runtime.sessions) as session:
            checkpoint = service.sign_checkpoint(session, home=settings.home, signing_key=key)
        log.debug("audit checkpoint", extra={"size": checkpoint.size})
        return interval

    return LoopWorker("audit-checkpoints", step, error_backoff=min(interval, 30.0))


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    if role in ("all", "worker"):
        runtime.workers.append(checkpoint_signer(runtime))
