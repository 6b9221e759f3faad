"""The detection worker: queue batch → detections → alerts → offset, in one transaction.

:class:`DetectionPipeline` is one step (:meth:`DetectionPipeline.run_once`): read a batch after
the consumer's committed offset, detect, store new detections, hand them to the alerts domain
(``vigil.alerts.service.record_detections``), append the correlation inputs of the batch
(:mod:`vigil.pipeline.correlation_store`), advance the offset, commit. A crash anywhere before
the commit leaves all of it undone and the batch is read again; detection ids (and the inputs'
unique key) make a redelivery (Redis, at-least-once) harmless too. The worker keeps no
correlation state: :mod:`vigil.pipeline.correlator` does, and is woken after each commit that
appended inputs (``on_inputs``).

:class:`DetectionThread` runs steps in a thread. Ingest wakes it through the queue's listener
the moment a publish commits, so an event waits for at most the batch in progress, never for a
poll interval. How it is hosted (a thread of the API process, or a child process on the other
core) is decided in :mod:`vigil.pipeline.host`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from vigil.alerts.intake import DetectionRecord
from vigil.bus.queue import EventQueue, QueuedEvent, SqlEventQueue
from vigil.bus.queue_gate import NoGate
from vigil.obs.failures import FailureLog
from vigil.obs.metrics import (
    DETECTIONS,
    EVENT_TO_ALERT_SECONDS,
    EVENTS_PROCESSED,
    PIPELINE_BATCH_SECONDS,
    QUEUE_DEAD_LETTERS,
    QUEUE_DEPTH,
    QUEUE_LAG_SECONDS,
)
from vigil.pipeline import service
from vigil.pipeline.correlation_store import append_inputs
from vigil.pipeline.detector import Detector, TenantOverrides
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.pipeline")


class DetectionSink(Protocol):
    """Where new detections go, inside the pipeline's transaction (the alerts domain)."""

    def __call__(
        self, session: Session, *, detections: Sequence[DetectionRecord], now: datetime
    ) -> None: ...


def alerts_sink(settings: Any = None) -> DetectionSink:
    """``vigil.alerts.service.record_detections`` with the process settings."""

    def record(session: Session, *, detections: Sequence[DetectionRecord], now: datetime) -> None:
        from vigil.alerts import service as alerts

        alerts.record_detections(session, detections=detections, now=now, settings=settings)

    return record


def no_sink(session: Session, *, detections: Sequence[DetectionRecord], now: datetime) -> None:
    """The sink for tests of the pipeline alone: detections are only stored."""


@dataclass(slots=True)
class BatchReport:
    """What one step did (the host forwards it to the metrics of the serving process)."""

    events: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    batch_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """accepted_at → commit, one per new detection."""

    def count(self, fresh: Sequence[DetectionRecord], *, committed: datetime) -> None:
        """Add the new detections ``fresh`` committed at ``committed``."""
        for record in fresh:
            level = record.level or "informational"
            self.detections[level] = self.detections.get(level, 0) + 1
            self.latencies.append(max(0.0, (committed - record.accepted_at).total_seconds()))


def apply_report(report: BatchReport) -> None:
    EVENTS_PROCESSED.inc(report.events)
    for level, n in report.detections.items():
        DETECTIONS.labels(level).inc(n)
    if report.events:
        PIPELINE_BATCH_SECONDS.observe(report.batch_seconds)
    for seconds in report.latencies:
        EVENT_TO_ALERT_SECONDS.observe(seconds)


class OverridesCache:
    """Every tenant's rule settings, loaded again only when their signature changed (checked at
    most every ``refresh_s``)."""

    def __init__(self, refresh_s: float = 1.0) -> None:
        self.refresh_s = refresh_s
        self._overrides: dict[str, TenantOverrides] = {}
        self._signature: Any = None
        self._checked = -float("inf")

    def current(self, session: Session) -> dict[str, TenantOverrides]:
        now = time.monotonic()
        if now - self._checked >= self.refresh_s:
            self._checked = now
            signature = service.overrides_signature(session)
            if signature != self._signature:
                self._overrides = service.load_overrides(session)
                self._signature = signature
        return self._overrides

    def refresh(self) -> None:
        """Look again on the next call."""
        self._checked = -float("inf")


class DetectionPipeline:
    """One consumer of the event queue (see the module docstring)."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        queue: EventQueue,
        detector: Detector,
        sink: DetectionSink,
        consumer: str = "detection",
        batch_size: int = 1000,
        overrides_refresh_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        # The service database's gate (on SQLite): ingest publishes into queue.db under a gate
        # of its own and never waits for this transaction.
        self.gate = queue.main_gate if isinstance(queue, SqlEventQueue) else NoGate()
        self.queue = queue
        self.detector = detector
        self.sink = sink
        self.consumer = consumer
        self.batch_size = batch_size
        self.overrides = OverridesCache(overrides_refresh_s)
        #: called (cheap, non-blocking) after a commit that appended correlation inputs
        self.on_inputs: list[Callable[[], None]] = []
        if isinstance(queue, SqlEventQueue):
            queue.ensure_consumer(consumer)

    def refresh_overrides(self) -> None:
        """Look at the tenants' rule settings again on the next batch."""
        self.overrides.refresh()

    def run_once(self) -> BatchReport:
        started = time.perf_counter()
        report = BatchReport()
        batch: list[QueuedEvent] = []
        session = system_session(self.sessions)
        try:
            batch = self.queue.read(session, consumer=self.consumer, limit=self.batch_size)
            if not batch:
                session.rollback()
                return report
            output = self.detector.detect(batch, self.overrides.current(session))
            # Everything that writes happens under the main gate, detection (CPU) before it.
            with self.gate.hold():
                now = datetime.now(UTC)
                fresh = service.store_detections(
                    session, records=output.records, seqs=output.seqs, now=now
                )
                if fresh:
                    self.sink(session, detections=fresh, now=now)
                # Last before the commit: on PostgreSQL this takes the lock ordering appends.
                append_inputs(session, rows=output.inputs, now=now)
                self.queue.ack(session, consumer=self.consumer, batch=batch)
                session.commit()
        except BaseException as exc:
            session.rollback()
            # Queues that dead-letter poison records (Redis) keep the reason with them.
            failed = getattr(self.queue, "failed", None)
            if failed is not None and isinstance(exc, Exception):
                failed(consumer=self.consumer, batch=batch, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            session.close()
        self.queue.acknowledged(consumer=self.consumer, batch=batch)
        if output.inputs:
            for listener in self.on_inputs:
                try:
                    listener()
                except Exception:
                    log.exception("correlation input listener failed")
        committed = datetime.now(UTC)
        report.events = output.events
        report.batch_seconds = time.perf_counter() - started
        report.count(fresh, committed=committed)
        return report


class DetectionThread:
    """Runs a pipeline in a daemon thread; :meth:`wake` cuts the idle wait short.

    The wake flag is cleared *before* each step, so a publish that lands while a step runs is
    never lost: the next wait returns at once.
    """

    def __init__(
        self,
        pipeline: DetectionPipeline,
        *,
        name: str = "detection",
        idle_poll_s: float = 1.0,
        on_report: Callable[[BatchReport], None] = apply_report,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval_s: float = 60.0,
        wake_event: Any = None,
    ) -> None:
        self.name = name
        self.pipeline = pipeline
        self._idle = idle_poll_s
        self._on_report = on_report
        self._housekeeping = housekeeping
        self._housekeeping_interval = housekeeping_interval_s
        # threading.Event, or a multiprocessing.Event when the waker is another process
        self._wake = wake_event if wake_event is not None else threading.Event()
        self._blocking_reads = bool(getattr(pipeline.queue, "blocking_reads", False))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.events = 0
        self.last_error: str | None = None
        self.last_batch_at: float | None = None
        self._failures = FailureLog(log, f"{name} batch")

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vigil-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        next_housekeeping = time.monotonic() + self._housekeeping_interval
        while not self._stop.is_set():
            self._wake.clear()
            full = False
            try:
                report = self.pipeline.run_once()
                self.last_error = None
                self._failures.succeeded()
                if report.events:
                    self.batches += 1
                    self.events += report.events
                    self.last_batch_at = time.time()
                    self._on_report(report)
                full = report.events >= self.pipeline.batch_size
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                # the first with its traceback, then one line per back-off step
                self._stop.wait(self._failures.failed(exc))
                continue
            if self._housekeeping is not None and time.monotonic() >= next_housekeeping:
                next_housekeeping = time.monotonic() + self._housekeeping_interval
                try:
                    self._housekeeping()
                except Exception:
                    log.exception("pipeline housekeeping failed")
            if not full and not self._blocking_reads:
                # A queue whose reads block on the server (Redis) has already waited there.
                self._wake.wait(self._idle)

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "mode": "thread",
            "batches": self.batches,
            "events": self.events,
            "last_error": self.last_error,
            "last_batch_at": self.last_batch_at,
        }


def queue_housekeeping(
    queue: EventQueue,
    *,
    consumer: str,
    retention_s: float,
    idempotency_window_s: float,
) -> Callable[[], None]:
    """Purge processed records past retention and refresh the queue gauges."""

    def run() -> None:
        removed = queue.purge(
            now=datetime.now(UTC),
            retention_s=retention_s,
            idempotency_window_s=idempotency_window_s,
        )
        if removed:
            log.info("queue purged", extra={"removed": removed})
        stats = queue.stats(consumer=consumer)
        QUEUE_DEPTH.set(stats.depth)
        QUEUE_LAG_SECONDS.set(stats.lag_seconds)
        count_dead = getattr(queue, "dead_letter_count", None)
        if count_dead is not None:  # a queue that dead-letters (Redis Streams)
            QUEUE_DEAD_LETTERS.set(count_dead())

    return run
