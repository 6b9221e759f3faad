"""Where the detection worker runs: a thread of the serving process, or a child process.

``pipeline.worker_mode`` chooses. The default is **process**, chosen by measurement
(``benchmarks/ingest_bench.py throughput``, 4 clients posting 1,000-event NDJSON batches of the
synthetic Sysmon corpus for 15 s, every SigmaHQ rule loaded, SQLite, this 2-core machine while
other jobs kept the load average near 5):

=================  ====================  ==========================
worker mode        events/s accepted     detection during the run
=================  ====================  ==========================
thread             9,290                 1,643 events/s
process            20,676                1,707 events/s
=================  ====================  ==========================

In a thread, parsing requests and matching rules share one interpreter lock, so ingest gets
about half a core; a child process gives each its own core. The child was slower than the
thread before writers queued on :mod:`vigil.bus.queue_gate` (SQLite's busy handler let the
stream of short ingest commits starve it); with the gate detection runs at the same speed in
both modes. The price of the child: the rules are loaded twice (the API lists them too; about
140 MiB each with SigmaHQ) and metrics travel through :mod:`vigil.pipeline.metrics_relay`.
A dedicated ``worker`` role process has no API to share the interpreter with and always uses
the thread.
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


def detection_worker(runtime: Runtime, registry: RuleRegistry, role: str) -> BackgroundWorker:
    if role == "all" and runtime.settings.pipeline.worker_mode == "process":
        return detection_process(runtime)
    return detection_thread(runtime, registry)
