"""Wire the pipeline domain onto a runtime: rules (loaded now, hot-reloaded), the detection
worker (roles "all" and "worker") and the "rules" health probe.

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.obs.health import Probe, register_probe
from vigil.pipeline.rules import RuleRegistry
from vigil.runtime import LoopWorker

if TYPE_CHECKING:
    from vigil.runtime import Runtime

RULES_KEY = "rules"


def registry_of(runtime: Runtime) -> RuleRegistry:
    registry: RuleRegistry = runtime.extras[RULES_KEY]
    return registry


def rules_probe(runtime: Runtime) -> dict[str, Any]:
    status = registry_of(runtime).status()
    last = status["last_reload"]
    return {
        "ok": last is None or bool(last["ok"]),
        "loaded": status["loaded"],
        "failed": len(status["failed"]),
        "stale": len(status["stale"]),
        "version": status["version"],
        "last_reload": last,
    }


def rules_reloader(registry: RuleRegistry, interval_s: float) -> LoopWorker:
    def step() -> float:
        registry.check()
        return interval_s

    return LoopWorker("rules-reload", step, error_backoff=interval_s)


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    from vigil.pipeline.host import detection_worker

    settings = runtime.settings
    registry = RuleRegistry(
        settings.rules_dirs,
        mapping_paths=settings.mapping_files,
        placeholders=settings.sigma_placeholders,
    )
    registry.load()
    runtime.extras[RULES_KEY] = registry
    register_probe(runtime, Probe("rules", rules_probe, critical=False))
    if settings.pipeline.hot_reload:
        runtime.workers.append(rules_reloader(registry, settings.pipeline.reload_interval_s))
    if role in ("all", "worker"):
        runtime.workers.append(detection_worker(runtime, registry, role))
