"""The detection worker as a child process of `vigil serve` (``pipeline.worker_mode=process``).

The child is started with the ``spawn`` method (a fresh interpreter: forking a process that
already runs an event loop and threads is not safe) and builds what it needs itself: a database
engine on the same settings, its own rule registry (loaded and hot-reloaded from the same
files), a :class:`vigil.pipeline.worker.DetectionThread` and the
:class:`vigil.pipeline.correlator.Correlator` it wakes after each batch with correlation inputs.
On a clean stop (the parent's stop event, or SIGTERM/SIGINT sent to the child itself, as a
service manager or Ctrl-C does to the whole process group) the child stops detection first and
then writes the correlation snapshot. It shares only three things with the parent:

* a wake pipe: ingest's queue listener writes a byte to it after each publish, so the child
  starts on new records at once (no polling delay). The write is non-blocking and a wake is
  dropped when the pipe is full (one pending wake is all the child needs). It replaced a
  ``multiprocessing.Event``, whose ``set()`` takes a lock shared with the child: with the child
  stopped (SIGSTOP, a debugger) or wedged while holding it, every ingest request hung in
  ``set()``;
* a stop event, for a clean shutdown;
* a report queue: after each batch the child sends the metric increments of its registry
  (:mod:`vigil.pipeline.metrics_relay`) and its status, which the parent applies, so
  ``/metrics`` and ``/health/deep`` of the serving process cover the pipeline.

The child dies with its parent (``PR_SET_PDEATHSIG`` on Linux, and a parent-pid check), so a
SIGKILLed server never leaves a detection process behind. If the child dies on its own, the
parent starts a new one (after a short back-off); the queue offset makes that lossless.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue as stdlib_queue
import select
import signal
import threading
import time
from typing import Any

from vigil.config import Settings
from vigil.pipeline.metrics_relay import DeltaTracker, apply_deltas

log = logging.getLogger("vigil.pipeline")

_PR_SET_PDEATHSIG = 1
RESTART_BACKOFF_S = 2.0


def _die_with_parent(parent_pid: int) -> None:
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


def _poke(fd: int) -> None:
    """Write one wake byte without ever blocking; a full pipe already holds a wake."""
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        os.write(fd, b"\0")


class PipeWake:
    """The child's end of the wake pipe, shaped like the event the detection thread waits on
    (``set``/``clear``/``is_set``/``wait``). ``set`` from inside the child (its own stop)
    writes to a second, local pipe watched alongside."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader  # keeps the descriptor open
        self._local_read, self._local_write = os.pipe()
        self._fds = (reader.fileno(), self._local_read)
        for fd in (*self._fds, self._local_write):
            os.set_blocking(fd, False)
        self._poll = select.poll()
        for fd in self._fds:
            self._poll.register(fd, select.POLLIN)

    def set(self) -> None:
        _poke(self._local_write)

    def clear(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(BlockingIOError):
                while os.read(fd, 4096):
                    pass

    def is_set(self) -> bool:
        return bool(self._poll.poll(0))

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._poll.poll(None if timeout is None else max(0, int(timeout * 1000))))


def child_main(
    settings: Settings, wake: Any, stop: Any, reports: Any, parent_pid: int
) -> None:  # pragma: no cover - runs in the child process (covered by the HTTP tests)
    _die_with_parent(parent_pid)
    wake = PipeWake(wake)
    from vigil.bus.queue import SqlEventQueue
    from vigil.bus.queue_gate import main_gate_for
    from vigil.bus.queue_store import open_sql_queue
    from vigil.obs.logging import configure_logging
    from vigil.pipeline.correlator import build_correlator
    from vigil.pipeline.detector import Detector
    from vigil.pipeline.host import freeze_heap
    from vigil.pipeline.rules import RuleRegistry
    from vigil.pipeline.wiring import rules_reloader
    from vigil.pipeline.worker import (
        BatchReport,
        DetectionPipeline,
        DetectionThread,
        alerts_sink,
        apply_report,
    )
    from vigil.store import engine_from_settings, session_factory

    configure_logging(settings.log_level)
    # SIGTERM/SIGINT sent to the whole process group (a service manager, Ctrl-C) end the child
    # cleanly, like the parent's stop event: detection stops, the correlation snapshot is written.
    terminated = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: terminated.set())
    engine = engine_from_settings(settings)
    sessions = session_factory(engine)
    registry = RuleRegistry(
        settings.rules_dirs,
        mapping_paths=settings.mapping_files,
        placeholders=settings.sigma_placeholders,
    )
    registry.load()
    freeze_heap()  # the rules out of the garbage collector's walks (see vigil.pipeline.host)
    reloader = rules_reloader(registry, settings.pipeline.reload_interval_s)
    if settings.pipeline.hot_reload:
        reloader.start()
    from vigil.bus.redis_queue import redis_queue_for

    # On SQLite: reads queue.db (no gate), writes the service database under the main gate.
    queue = redis_queue_for(settings) or open_sql_queue(settings, sessions, engine)
    sink = alerts_sink(settings)
    pipeline = DetectionPipeline(
        sessions=sessions,
        queue=queue,
        detector=Detector(registry, partitions=settings.pipeline.correlation_partitions),
        sink=sink,
        consumer=settings.pipeline.consumer,
        batch_size=settings.pipeline.batch_size,
        overrides_refresh_s=settings.pipeline.overrides_refresh_s,
    )
    tracker = DeltaTracker()
    worker: DetectionThread

    def status() -> dict[str, Any]:
        return {**worker.status(), "correlator": correlator.status()}

    def on_report(report: BatchReport) -> None:
        apply_report(report)  # into the child's registry; shipped as deltas below
        reports.put(("deltas", tracker.take(), status()))

    worker = DetectionThread(
        pipeline,
        idle_poll_s=settings.pipeline.idle_poll_s,
        on_report=on_report,
        wake_event=wake,
    )
    correlator = build_correlator(
        settings,
        engine=engine,
        sessions=sessions,
        registry=registry,
        sink=sink,
        gate=(
            queue.main_gate
            if isinstance(queue, SqlEventQueue)
            else main_gate_for(settings.resolved_database_url(), settings.home)
        ),
    )
    pipeline.on_inputs.append(correlator.wake)
    correlator.start()
    worker.start()
    reports.put(("ready", [], status()))
    while not stop.wait(0.5) and not terminated.is_set():
        if os.getppid() != parent_pid:
            break
        reports.put(("deltas", tracker.take(), status()))
    worker.stop()
    correlator.stop()  # after detection: the snapshot covers every input it appended
    reloader.stop()
    if isinstance(queue, SqlEventQueue):
        queue.dispose()
    engine.dispose()


class DetectionProcess:
    """The parent's handle on the detection child (a :class:`vigil.runtime.BackgroundWorker`)."""

    name = "detection"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ctx = multiprocessing.get_context("spawn")
        # (reader, writer): the reader goes to every child, the parent writes non-blocking
        self._wake_reader, self._wake_writer = self._ctx.Pipe(duplex=False)
        os.set_blocking(self._wake_writer.fileno(), False)
        self._stop = self._ctx.Event()
        self._reports: Any = self._ctx.Queue()
        self._process: Any = None
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self.restarts = 0
        self.child_status: dict[str, Any] = {}

    def wake(self) -> None:
        _poke(self._wake_writer.fileno())

    def _spawn(self) -> None:
        self._stop.clear()
        self._process = self._ctx.Process(
            target=child_main,
            args=(self._settings, self._wake_reader, self._stop, self._reports, os.getpid()),
            name="vigil-detection",
            daemon=True,
        )
        self._process.start()

    def start(self) -> None:
        if self._supervisor is not None:
            return
        self._stopping.clear()
        self._spawn()
        self._supervisor = threading.Thread(
            target=self._supervise, name="vigil-detection-relay", daemon=True
        )
        self._supervisor.start()

    def _supervise(self) -> None:
        while not self._stopping.is_set():
            try:
                _kind, deltas, status = self._reports.get(timeout=0.5)
            except stdlib_queue.Empty:
                if not self._stopping.is_set() and not self._process.is_alive():
                    log.error(
                        "detection process exited; starting a new one",
                        extra={"exitcode": self._process.exitcode},
                    )
                    time.sleep(RESTART_BACKOFF_S)
                    if not self._stopping.is_set():
                        self.restarts += 1
                        self._spawn()
                continue
            except (EOFError, OSError):
                return
            apply_deltas(deltas)
            self.child_status = status

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._stop.set()
        self.wake()
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
            self._supervisor = None

    def status(self) -> dict[str, Any]:
        alive = self._process is not None and self._process.is_alive()
        return {
            **self.child_status,
            "running": alive and bool(self.child_status.get("running", True)),
            "starting": alive and not self.child_status,
            "mode": "process",
            "pid": self._process.pid if self._process is not None else None,
            "restarts": self.restarts,
        }
