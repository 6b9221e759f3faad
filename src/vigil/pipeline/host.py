"""Where the detection worker runs: a thread of the serving process, or a child process.

``pipeline.worker_mode`` chooses; the measurements behind the default are below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vigil.bus.queue import queue_of
from vigil.pipeline.detector import Detector
from vigil.pipeline.process import DetectionProcess
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import (
    DetectionPipeline,
    DetectionThread,
    alerts_sink,
    queue_housekeeping,
)

if TYPE_CHECKING:
    from vigil.runtime import BackgroundWorker, Runtime


def detection_thread(runtime: Runtime, registry: RuleRegistry) -> DetectionThread:
    settings = runtime.settings
    queue = queue_of(runtime)
    pipeline = DetectionPipeline(
        sessions=runtime.sessions,
        queue=queue,
        detector=Detector(registry),
        sink=alerts_sink(settings),
        consumer=settings.pipeline.consumer,
        batch_size=settings.pipeline.batch_size,
        overrides_refresh_s=settings.pipeline.overrides_refresh_s,
    )
    worker = DetectionThread(
        pipeline,
        idle_poll_s=settings.pipeline.idle_poll_s,
        housekeeping=queue_housekeeping(
            queue,
            consumer=settings.pipeline.consumer,
            retention_s=settings.pipeline.processed_retention_s,
            idempotency_window_s=settings.ingest.idempotency_window_s,
        ),
        housekeeping_interval_s=settings.pipeline.purge_interval_s,
    )
    queue.add_listener(worker.wake)
    return worker


def detection_process(runtime: Runtime) -> DetectionProcess:
    process = DetectionProcess(runtime.settings)
    queue_of(runtime).add_listener(process.wake)
    return process


def detection_worker(runtime: Runtime, registry: RuleRegistry) -> BackgroundWorker:
    if runtime.settings.pipeline.worker_mode == "process":
        return detection_process(runtime)
    return detection_thread(runtime, registry)
