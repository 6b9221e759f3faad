"""Who runs the correlator of each partition: one process at a time, taken over when it dies
or freezes.

* **PostgreSQL**: a lease per partition (:mod:`vigil.bus.leases`), renewed by the owner every
  rebalance (a third of the lease time at most) and taken over by another correlator once it
  expires: a dead process and a frozen one (SIGSTOP, with its connections still open) lose
  their partitions alike, after ``pipeline.correlation_lease_s``. Every correlator also holds a
  *member* lease, so each can count the live members and keep only its fair share
  (``ceil(partitions / members)``): starting another worker spreads the partitions, stopping
  (or freezing) one hands its share on. A take-over bumps the lease's epoch; a step writes its
  state only in a transaction that also fences on its epoch (:meth:`PartitionLocks.fence`), so
  an owner that wakes after a take-over writes nothing and drops the partition.
* **SQLite**: the embedded deployment runs one correlator, in the detection process. An
  exclusive ``flock`` per partition next to the database file still makes sure that a second
  process on the same file (a stray ``vigil worker``) cannot correlate at the same time.

The correlator also locks its partition's state row and checks that the committed position is
the one it last wrote (see :mod:`vigil.pipeline.correlator`): a second writer is detected even
where no lease fences (SQLite).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from vigil.bus.leases import Leases

log = logging.getLogger("vigil.pipeline")

PARTITION_LEASE = "correlation-partition:"
MEMBER_LEASE = "correlator-member:"
#: members' lease rows expired this long are deleted (each process instance adds one)
FORGET_MEMBERS_S = 3600.0


class PartitionLocks(Protocol):
    def try_acquire(self, partition: int) -> bool: ...

    def release(self, partition: int) -> None: ...

    def members(self) -> int:
        """Live correlator processes (at least 1: this one); also renews this one's membership."""
        ...

    def renew(self) -> set[int]:
        """Extend the held partitions; returns those lost (taken over): drop them unwritten."""
        ...

    def guard(self, session: Session) -> None:
        """Called first in a step's transaction (see :meth:`vigil.bus.leases.Leases.guard`)."""
        ...

    def fence(self, session: Session, partition: int) -> bool:
        """In a step's transaction, before it writes: False when the partition was lost."""
        ...

    def close(self) -> None: ...


class PgPartitionLeases:
    """Partition and member leases on PostgreSQL (see the module docstring)."""

    def __init__(self, engine: Engine, *, lease_s: float) -> None:
        self.leases = Leases(engine, ttl_s=lease_s)
        self._held: dict[int, int] = {}  # partition -> epoch
        self._member: int | None = None  # epoch of this process's member lease
        self._next_forget = 0.0
        self._lock = threading.Lock()

    def try_acquire(self, partition: int) -> bool:
        with self._lock:
            epoch = self.leases.acquire(f"{PARTITION_LEASE}{partition}")
            if epoch is None:
                return False
            self._held[partition] = epoch
            return True

    def release(self, partition: int) -> None:
        with self._lock:
            epoch = self._held.pop(partition, None)
            if epoch is not None:
                self.leases.release(f"{PARTITION_LEASE}{partition}", epoch)

    def members(self) -> int:
        with self._lock:
            if self._member is None:  # first call, or the member lease lapsed (renew)
                self._member = self.leases.acquire(f"{MEMBER_LEASE}{self.leases.owner}")
            if time.monotonic() >= self._next_forget:
                self._next_forget = time.monotonic() + FORGET_MEMBERS_S / 6
                self.leases.forget_expired(MEMBER_LEASE, older_than_s=FORGET_MEMBERS_S)
            return max(1, self.leases.live(MEMBER_LEASE))

    def renew(self) -> set[int]:
        """Renews the partitions and the membership in one statement."""
        with self._lock:
            me = f"{MEMBER_LEASE}{self.leases.owner}"
            names = {f"{PARTITION_LEASE}{n}": epoch for n, epoch in self._held.items()}
            if self._member is not None:
                names[me] = self._member
            gone = self.leases.renew(names)
            if me in gone:
                self._member = None
            lost = {int(name[len(PARTITION_LEASE) :]) for name in gone if name != me}
            for partition in lost:
                del self._held[partition]
            if lost:
                log.warning("correlation partitions lost", extra={"partitions": sorted(lost)})
            return lost

    def guard(self, session: Session) -> None:
        self.leases.guard(session)

    def fence(self, session: Session, partition: int) -> bool:
        epoch = self._held.get(partition)
        if epoch is None:
            return False
        if self.leases.fence(session, f"{PARTITION_LEASE}{partition}", epoch):
            return True
        with self._lock:
            self._held.pop(partition, None)
        return False

    def close(self) -> None:
        with self._lock:
            for partition, epoch in list(self._held.items()):
                try:
                    self.leases.release(f"{PARTITION_LEASE}{partition}", epoch)
                except Exception:
                    log.debug("releasing a partition lease failed", exc_info=True)
            self._held.clear()
            if self._member is not None:
                try:
                    self.leases.release(f"{MEMBER_LEASE}{self.leases.owner}", self._member)
                except Exception:
                    log.debug("releasing the member lease failed", exc_info=True)
                self._member = None


class FilePartitionLocks:
    """``flock`` per partition on ``<database file>.correlator-<n>.lock`` (SQLite)."""

    def __init__(self, base: Path | None) -> None:
        #: None (an in-memory database): locks only within this object
        self._base = base
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def try_acquire(self, partition: int) -> bool:
        with self._lock:
            if partition in self._fds:
                return True
            if self._base is None:
                self._fds[partition] = -1
                return True
            path = self._base.with_name(f"{self._base.name}.correlator-{partition}.lock")
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fds[partition] = fd
            return True

    def release(self, partition: int) -> None:
        with self._lock:
            fd = self._fds.pop(partition, None)
            if fd is not None and fd >= 0:
                os.close(fd)  # closing the descriptor releases its flock

    def members(self) -> int:
        return 1

    def renew(self) -> set[int]:
        return set()  # a flock is held until its descriptor closes

    def guard(self, session: Session) -> None:
        return None

    def fence(self, session: Session, partition: int) -> bool:
        return partition in self._fds

    def close(self) -> None:
        for partition in list(self._fds):
            self.release(partition)


def locks_for(engine: Engine, *, lease_s: float = 15.0) -> PartitionLocks:
    if engine.dialect.name == "postgresql":
        return PgPartitionLeases(engine, lease_s=lease_s)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return FilePartitionLocks(None)
    return FilePartitionLocks(Path(database).resolve())
