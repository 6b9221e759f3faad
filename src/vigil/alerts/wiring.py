"""Wire the alerts domain onto a runtime.

Alerts need no worker of their own: the detection pipeline calls
``vigil.alerts.service.record_detections`` inside its transaction, and escalation of
unacknowledged alerts runs in the incidents domain's escalation worker. Called by
:func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.runtime import Runtime


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
