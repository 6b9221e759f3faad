"""Everything a running Vigil process shares: settings, storage, identity hooks, workers.

Built once at start-up by :func:`build_runtime` (``vigil serve``, ``vigil worker``, tests) and
passed down; nothing in here is global.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from vigil.api.deps import Authenticator, Authorizer, DenyAllAuthenticator, RoleAuthorizer
from vigil.config import Settings
from vigil.obs.failures import FailureLog
from vigil.store import engine_from_settings, session_factory

log = logging.getLogger("vigil.runtime")


class BackgroundWorker(Protocol):
    """A long-running part of the process (detection, notifier, escalation, checkpoints)."""

    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...

    def status(self) -> dict[str, Any]:
        """For /health/deep: at least ``{"running": bool}``."""
        ...


class LoopWorker:
    """A daemon thread calling ``step()`` until stopped; ``step`` returns the seconds to sleep.

    Exceptions in a step are retried, first after ``error_backoff`` seconds and then doubling up
    to 30 s, so a transient storage failure never kills the loop; the first failure is logged
    with its traceback, later ones as one line each, and recovery as one line (``FailureLog``:
    an outage of ten minutes is not 600 tracebacks per loop).
    """

    def __init__(self, name: str, step: Callable[[], float], *, error_backoff: float = 1.0) -> None:
        self.name = name
        self._step = step
        self._stop = threading.Event()
        self._wakeup = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = FailureLog(log, name, base_s=error_backoff, cap_s=max(30.0, error_backoff))
        self.last_error: str | None = None
        self.last_step_at: float | None = None
        self.steps = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"vigil-{self.name}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Cut the current sleep short (new work arrived)."""
        self._wakeup.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self._step()
                self.last_error = None
                self._failures.succeeded()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                delay = self._failures.failed(exc)
            self.steps += 1
            self.last_step_at = time.time()
            if delay > 0:
                self._wakeup.wait(delay)
                self._wakeup.clear()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def status(self) -> dict[str, Any]:
        return {
            "running": self._thread is not None and self._thread.is_alive(),
            "steps": self.steps,
            "last_error": self.last_error,
            "last_step_at": self.last_step_at,
        }


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    authenticator: Authenticator = field(default_factory=DenyAllAuthenticator)
    authorizer: Authorizer = field(default_factory=RoleAuthorizer)
    workers: list[BackgroundWorker] = field(default_factory=list)
    #: Domain services attach what they share here (rule engine holder, queue, limiter...).
    extras: dict[str, Any] = field(default_factory=dict)
    started_at: float = field(default_factory=time.time)

    def start_workers(self) -> None:
        for worker in self.workers:
            worker.start()

    def stop_workers(self, timeout: float = 10.0) -> None:
        for worker in reversed(self.workers):
            try:
                worker.stop(timeout)
            except Exception:
                log.exception("worker stop failed", extra={"worker": worker.name})

    def close(self) -> None:
        self.stop_workers()
        self.engine.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """Storage and defaults; ``vigil.api.assemble`` wires the domains onto it."""
    engine = engine_from_settings(settings)
    return Runtime(settings=settings, engine=engine, sessions=session_factory(engine))
