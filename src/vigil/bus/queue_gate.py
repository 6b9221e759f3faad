"""One writer at a time on a SQLite file, handed over without busy-polling.

SQLite admits one writer per database file; a connection that finds it locked sleeps in its
busy handler (1, 2, 5 … up to 100 ms) and tries again. Under a stream of short ingest commits
the detection worker's transaction, retrying on that schedule, can lose the race for seconds.
A gate makes the writers of one file queue up on a lock instead: a thread lock inside the
process plus an exclusive ``flock`` on a lock file across processes (the detection child). A
blocked waiter is woken the moment the lock is released.

There are two gates on SQLite, one per file (:mod:`vigil.bus.queue_store`):

* the **queue gate** (``<home>/queue.lock``, :func:`gate_for`): writers of ``queue.db`` —
  ingest publishes and the purge;
* the **main gate** (``<home>/main.lock``, :func:`main_gate_for`): the heavy writers of the
  service database — the detection worker's transaction (results + consumer offset) and the
  correlator. Ingest never takes it, so a detection batch no longer holds ingest up.

On PostgreSQL there is no gate (row locks and the publishers' advisory lock suffice).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WriteGate:
    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        self._pid = -1

    def _descriptor(self) -> int:
        # One descriptor per process (a forked or spawned child opens its own).
        if self._fd is None or self._pid != os.getpid():
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._thread_lock:
            fd = self._descriptor()
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)


class NoGate:
    """For backends with real concurrent writers."""

    @contextmanager
    def hold(self) -> Iterator[None]:
        yield


def gate_for(database_url: str, home: Path) -> WriteGate | NoGate:
    """The queue gate: writers of the queue's database file (see the module docstring)."""
    return WriteGate(home / "queue.lock") if database_url.startswith("sqlite") else NoGate()


def main_gate_for(database_url: str, home: Path) -> WriteGate | NoGate:
    """The main gate: the detection worker's and the correlator's writes of the service
    database (see the module docstring)."""
    return WriteGate(home / "main.lock") if database_url.startswith("sqlite") else NoGate()
