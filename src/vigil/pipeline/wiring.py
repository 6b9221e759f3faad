"""Wire the pipeline domain onto a runtime: rules (loaded now, hot-reloaded), the detection
worker and the correlator (roles "all" and "worker") and the "rules" health probe.

The correlator runs where detection runs: in this process when detection is a thread (role
"worker", or ``pipeline.worker_mode=thread``), else in the detection child
(:mod:`vigil.pipeline.process`).

Called by :func:`vigil.wiring.assemble` for every process role.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vigil.obs.health import Probe, register_probe
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import DetectionThread
from vigil.runtime import LoopWorker

if TYPE_CHECKING:
    from vigil.pipeline.correlator import Correlator
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
    # poll(): folder mtimes every call (new, deleted, renamed files: how editors and git
    # write), every rule file's stat every 5th call (an in-place rewrite): ~1 ms instead of
    # ~20 ms of CPU per call with SigmaHQ's ~3,000 files, in every process holding rules.
    def step() -> float:
        registry.poll()
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
        detection = detection_worker(runtime, registry, role)
        if isinstance(detection, DetectionThread):
            # Stopped after detection (workers stop in reverse order): the final snapshot
            # then covers every input this process appended.
            runtime.workers.append(correlator_for(runtime, registry, detection))
        runtime.workers.append(detection)


def correlator_for(
    runtime: Runtime, registry: RuleRegistry, detection: DetectionThread
) -> Correlator:
    from vigil.bus.queue import SqlEventQueue, queue_of
    from vigil.bus.queue_gate import main_gate_for
    from vigil.pipeline.correlator import build_correlator
    from vigil.pipeline.worker import alerts_sink

    settings = runtime.settings
    queue = queue_of(runtime)
    # The service database's gate: the correlator writes there, never into the queue's file.
    gate = (
        queue.main_gate
        if isinstance(queue, SqlEventQueue)
        else main_gate_for(settings.resolved_database_url(), settings.home)
    )
    correlator = build_correlator(
        settings,
        engine=runtime.engine,
        sessions=runtime.sessions,
        registry=registry,
        sink=alerts_sink(settings),
        gate=gate,
    )
    detection.pipeline.on_inputs.append(correlator.wake)
    return correlator
