"""Wire the metering domain onto a runtime (authentication hooks, workers, health probes).

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vigil.runtime import Runtime


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
