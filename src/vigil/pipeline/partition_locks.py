"""Who runs the correlator of each partition: one process at a time, taken over when it dies.

* **PostgreSQL**: a session-level advisory lock per partition, held on one dedicated connection
  of the owning process. When the process dies its connection closes and PostgreSQL releases
  the locks at once; the next process that tries takes the partition over. Every correlator
  also holds a *shared* advisory lock that marks it a member, so each can count the live
  members in ``pg_locks`` and keep only its fair share (``ceil(partitions / members)``):
  starting another worker spreads the partitions, stopping one hands its share on. Lock keys
  are hashed with the schema name, so Vigil deployments in other schemas of the same database
  never contend.
* **SQLite**: the embedded deployment runs one correlator, in the detection process. An
  exclusive ``flock`` per partition next to the database file still makes sure that a second
  process on the same file (a stray ``vigil worker``) cannot correlate at the same time.

Ownership is only the normal case's guarantee; correctness does not rest on it: each step of
the correlator locks its partition's state row and checks that the committed position is the
one it last wrote (see :mod:`vigil.pipeline.correlator`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("vigil.pipeline")

LOCK_NAME = "vigil-correlator"


class PartitionLocks(Protocol):
    def try_acquire(self, partition: int) -> bool: ...

    def release(self, partition: int) -> None: ...

    def members(self) -> int:
        """Live correlator processes (at least 1: this one)."""
        ...

    def healthy(self) -> bool:
        """False when held locks may have been lost (connection gone); all are dropped then."""
        ...

    def close(self) -> None: ...


def _key(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PgPartitionLocks:
    """Session advisory locks on one dedicated autocommit connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._schema = ""
        self._lock = threading.Lock()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                self._schema = str(conn.execute(text("SELECT current_schema()")).scalar_one())
                conn.execute(text("SELECT pg_advisory_lock_shared(:k)"), {"k": self._members_key()})
            except Exception:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _members_key(self) -> int:
        return _key(self._schema, LOCK_NAME, "members")

    def try_acquire(self, partition: int) -> bool:
        with self._lock:
            conn = self._connection()
            key = _key(self._schema, LOCK_NAME, partition)
            return bool(
                conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one()
            )

    def release(self, partition: int) -> None:
        with self._lock:
            if self._conn is None:
                return
            key = _key(self._schema, LOCK_NAME, partition)
            self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})

    def members(self) -> int:
        with self._lock:
            conn = self._connection()
            key = self._members_key()
            # A bigint advisory key shows in pg_locks as classid (high half), objid (low half).
            count = conn.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                    " AND database = (SELECT oid FROM pg_database"
                    "                 WHERE datname = current_database())"
                    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
                ),
                {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF},
            ).scalar_one()
            return max(1, int(count))

    def healthy(self) -> bool:
        with self._lock:
            if self._conn is None:
                return True  # nothing held yet
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:
                log.warning("correlator lock connection lost; partitions are released")
                self._close()
                return False

    def _close(self) -> None:
        if self._conn is not None:
            try:
                # Invalidate, not just close: a pooled connection would keep the session, and
                # with it the locks. Ending the session makes PostgreSQL release them.
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                log.debug("closing the lock connection failed", exc_info=True)
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._close()


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

    def healthy(self) -> bool:
        return True

    def close(self) -> None:
        for partition in list(self._fds):
            self.release(partition)


def locks_for(engine: Engine) -> PartitionLocks:
    if engine.dialect.name == "postgresql":
        return PgPartitionLocks(engine)
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return FilePartitionLocks(None)
    return FilePartitionLocks(Path(database).resolve())
