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

Waking: ingest in the same process wakes the detection thread through the queue's listener,
and the detection child through its wake pipe. Records written by *another* process (a
``worker`` beside ``serve --role api`` on one SQLite file) used to wait for the idle poll
(``pipeline.idle_poll_s``, 1 s); on SQLite the thread's wait now also ends when any connection
commits to the database (:class:`CommitWake`, a ``PRAGMA data_version`` look every 10 ms), so
they are picked up within milliseconds too. PostgreSQL workers still poll (LISTEN/NOTIFY would
be the equivalent); Redis Streams readers block on the stream.

Queue housekeeping (purge past retention, queue gauges) runs in a thread of its own in this
process (:func:`queue_housekeeper`), never between two detection batches.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import TYPE_CHECKING

from vigil.bus.queue import SqlEventQueue, SqliteChanges, queue_of, sqlite_changes
from vigil.obs.failures import FailureLog
from vigil.pipeline.detector import Detector
from vigil.pipeline.process import DetectionProcess
from vigil.pipeline.rules import RuleRegistry
from vigil.pipeline.worker import (
    DetectionPipeline,
    DetectionThread,
    alerts_sink,
    queue_housekeeping,
)
from vigil.runtime import LoopWorker

if TYPE_CHECKING:
    from vigil.runtime import BackgroundWorker, Runtime


class CommitWake:
    """The detection thread's wake event, whose wait also ends when another connection commits
    to the SQLite database (looked at every ``step_s``); the thread then reads the queue (an
    empty read when the commit was not a publish: cheap)."""

    def __init__(self, changes: SqliteChanges, step_s: float = 0.01) -> None:
        self._event = threading.Event()
        self._changes = changes
        self._step = step_s

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = self._step
            if deadline is not None:
                step = min(step, max(0.0, deadline - time.monotonic()))
            if self._event.wait(step) or self._changes.changed():
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


def detection_thread(runtime: Runtime, registry: RuleRegistry) -> DetectionThread:
    settings = runtime.settings
    queue = queue_of(runtime)
    pipeline = DetectionPipeline(
        sessions=runtime.sessions,
        queue=queue,
        detector=Detector(registry, partitions=settings.pipeline.correlation_partitions),
        sink=alerts_sink(settings),
        consumer=settings.pipeline.consumer,
        batch_size=settings.pipeline.batch_size,
        overrides_refresh_s=settings.pipeline.overrides_refresh_s,
    )
    worker = DetectionThread(
        pipeline,
        idle_poll_s=settings.pipeline.idle_poll_s,
        wake_event=_commit_wake(runtime, queue),
    )
    queue.add_listener(worker.wake)
    return worker


def _commit_wake(runtime: Runtime, queue: object) -> CommitWake | None:
    if not isinstance(queue, SqlEventQueue):
        return None
    changes = sqlite_changes(runtime.engine)
    return CommitWake(changes) if changes is not None else None


def detection_process(runtime: Runtime) -> DetectionProcess:
    process = DetectionProcess(runtime.settings)
    queue_of(runtime).add_listener(process.wake)
    return process


def freeze_heap() -> None:
    """Put every object alive now out of the cyclic garbage collector's reach (``gc.freeze``).

    Called once the rules are loaded: with every SigmaHQ rule compiled the heap holds ~140 MiB
    of long-lived objects, and each full (generation 2) collection walked all of them: 0.4-0.5 s
    of CPU, about once per 20,000 events detected, measured with ``ingest_bench.py stages`` —
    a tenth of the detection worker's time and a pause every event behind it waited out. The
    frozen objects are still freed by reference counting; only cycles among them are never
    collected: a hot reload of every SigmaHQ rule leaves 12 such objects behind (measured)."""
    gc.collect()
    gc.freeze()


def queue_housekeeper(runtime: Runtime) -> LoopWorker:
    """Queue purge and gauges every ``pipeline.purge_interval_s``, in a thread of their own.

    The detection thread used to run them between two batches, so every event behind waited
    for the purge: at 5,000 events/s a minute's worth of records past retention is 300,000
    rows, several seconds of deleting. Now the purge deletes in chunks, each a short hold of
    the write gate (:meth:`vigil.bus.queue.SqlEventQueue.purge`), and detection goes on."""
    settings = runtime.settings
    queue = queue_of(runtime)
    if isinstance(queue, SqlEventQueue):
        # Purge never passes the detection consumer, even before a detection child made it.
        queue.ensure_consumer(settings.pipeline.consumer)
    run = queue_housekeeping(
        queue,
        consumer=settings.pipeline.consumer,
        retention_s=settings.pipeline.processed_retention_s,
        idempotency_window_s=settings.ingest.idempotency_window_s,
    )
    interval = settings.pipeline.purge_interval_s

    def step() -> float:
        run()
        return interval

    failures = FailureLog(logging.getLogger("vigil.pipeline"), "queue housekeeping")
    return LoopWorker("queue-housekeeping", failures.guard(step), error_backoff=interval)


def detection_worker(runtime: Runtime, registry: RuleRegistry, role: str) -> BackgroundWorker:
    """The detection worker for ``role``; also adds the queue housekeeper to the runtime's
    workers (in this process, whether detection runs here or in a child)."""
    freeze_heap()  # this process holds the rules too (see freeze_heap)
    runtime.workers.append(queue_housekeeper(runtime))
    if role == "all" and runtime.settings.pipeline.worker_mode == "process":
        return detection_process(runtime)
    return detection_thread(runtime, registry)
