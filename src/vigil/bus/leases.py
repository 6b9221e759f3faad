"""Leases: named, expiring claims in the ``leases`` table of PostgreSQL, with fencing epochs.

A lease is held by one *owner* (a process instance) until ``expires_at``; the holder renews it
well before then. A process that stops renewing — dead, or frozen (SIGSTOP, a stalled VM) with
its connections still open — loses the lease at expiry, and another process takes it over.
Session advisory locks, which this replaces for the correlator, cannot do that: a frozen process
keeps its connection, so it keeps its locks forever.

Every take-over increments the lease's ``epoch``. The holder writes the state the lease guards
only in a transaction that also runs :meth:`Leases.fence`: an ``UPDATE`` of its own lease row
matching its owner *and* epoch. A holder that was frozen past its expiry and taken over finds
no such row and rolls back; while the fence's row lock is held, a take-over waits for that
transaction to end, so a write and a take-over never interleave.

Expiry is measured on the database's clock (``clock_timestamp()``), never the hosts', so
skewed clocks between workers cannot make two holders.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from vigil.obs.failures import FailureLog

log = logging.getLogger("vigil.bus")

#: how long a take-over waits for a row lock (a holder's running write) before it gives up
#: and tries again later
TAKEOVER_LOCK_TIMEOUT = "1s"

_EXPIRY = "clock_timestamp() + make_interval(secs => :ttl)"


def instance_id() -> str:
    """A name for this process instance: host and pid, plus a random part (pids repeat across
    containers and restarts)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Leases:
    """Leases of one owner on one PostgreSQL database; each call is its own short transaction
    (except :meth:`fence`, which runs in the caller's)."""

    def __init__(self, engine: Engine, *, ttl_s: float, owner: str | None = None) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.owner = owner or instance_id()

    def acquire(self, name: str) -> int | None:
        """Take ``name`` if it is free, expired or already ours; returns the new epoch, or None
        when another owner holds it (or its row is locked by a write in progress)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL lock_timeout = '{TAKEOVER_LOCK_TIMEOUT}'"))
                epoch = conn.execute(
                    text(
                        "INSERT INTO leases AS l (name, owner, epoch, expires_at)"
                        f" VALUES (:name, :owner, 1, {_EXPIRY})"
                        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                        "  epoch = l.epoch + 1, expires_at = excluded.expires_at"
                        " WHERE l.expires_at < clock_timestamp() OR l.owner = excluded.owner"
                        " RETURNING epoch"
                    ),
                    {"name": name, "owner": self.owner, "ttl": self.ttl_s},
                ).scalar_one_or_none()
        except DBAPIError as exc:
            if getattr(exc.orig, "sqlstate", None) == "55P03":  # lock_not_available
                return None
            raise
        return None if epoch is None else int(epoch)

    def renew(self, held: dict[str, int]) -> set[str]:
        """Extend every lease in ``held`` (name -> epoch); returns the names no longer ours."""
        if not held:
            return set()
        with self.engine.begin() as conn:
            rows = conn.execute(
                text(
                    f"UPDATE leases SET expires_at = {_EXPIRY}"
                    " WHERE owner = :owner AND name = ANY(:names) RETURNING name, epoch"
                ),
                {"owner": self.owner, "names": list(held), "ttl": self.ttl_s},
            ).all()
        kept = {str(name) for name, epoch in rows if held.get(str(name)) == int(epoch)}
        return set(held) - kept

    def release(self, name: str, epoch: int) -> None:
        """Expire the lease now (the row stays: its epoch must keep growing)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE leases SET expires_at = clock_timestamp() - interval '1 second'"
                    " WHERE name = :name AND owner = :owner AND epoch = :epoch"
                ),
                {"name": name, "owner": self.owner, "epoch": epoch},
            )

    def fence(self, session: Session, name: str, epoch: int) -> bool:
        """In the caller's transaction: renew the lease if it is still ours at ``epoch`` and
        keep its row locked until that transaction ends. False: taken over, write nothing."""
        row = session.execute(
            text(
                f"UPDATE leases SET expires_at = {_EXPIRY}"
                " WHERE name = :name AND owner = :owner AND epoch = :epoch RETURNING epoch"
            ),
            {"name": name, "owner": self.owner, "epoch": epoch, "ttl": self.ttl_s},
        ).first()
        return row is not None

    def guard(self, session: Session) -> None:
        """Bound how long the caller's transaction may sit idle on the server: a process frozen
        in the middle of it would otherwise keep its row locks (and block the take-over) for as
        long as it stays frozen. PostgreSQL ends such a session after the lease time."""
        session.execute(
            text("SELECT set_config('idle_in_transaction_session_timeout', :ms, true)"),
            {"ms": str(max(1, int(self.ttl_s * 1000)))},
        )

    def live(self, prefix: str) -> int:
        """How many unexpired leases have a name starting with ``prefix``."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM leases WHERE name LIKE :pattern"
                        " AND expires_at > clock_timestamp()"
                    ),
                    {"pattern": prefix.replace("%", r"\%").replace("_", r"\_") + "%"},
                ).scalar_one()
            )

    def forget_expired(self, prefix: str, *, older_than_s: float) -> None:
        """Delete leases under ``prefix`` expired for ``older_than_s`` (per-process names, such
        as members, would pile up otherwise)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "DELETE FROM leases WHERE name LIKE :pattern"
                    " AND expires_at < clock_timestamp() - make_interval(secs => :age)"
                ),
                {
                    "pattern": prefix.replace("%", r"\%").replace("_", r"\_") + "%",
                    "age": older_than_s,
                },
            )


class Leadership:
    """One lease named ``name`` held by at most one process of a deployment: the leader.

    :meth:`is_leader` is cheap (a round trip only every third of the lease time: a renewal by
    the leader, a take-over attempt by the others) and safe to call from several threads.
    Without leases (SQLite: one serving process per database file) this process always leads.
    """

    def __init__(self, leases: Leases | None, name: str) -> None:
        self.leases = leases
        self.name = name
        self._epoch: int | None = None
        self._failures = FailureLog(log, f"lease {name}")
        self._next_check = 0.0
        self._lock = threading.Lock()

    @property
    def check_interval_s(self) -> float:
        return self.leases.ttl_s / 3 if self.leases is not None else 1.0

    @property
    def held(self) -> bool:
        """Whether this process led at the last check (no round trip: for status pages)."""
        return self.leases is None or self._epoch is not None

    def is_leader(self) -> bool:
        if self.leases is None:
            return True
        with self._lock:
            now = time.monotonic()
            if now < self._next_check:
                return self._epoch is not None
            self._next_check = now + self.check_interval_s
            was = self._epoch
            try:
                if self._epoch is not None and self.leases.renew({self.name: self._epoch}):
                    self._epoch = None  # taken over while this process was not renewing
                if self._epoch is None:
                    self._epoch = self.leases.acquire(self.name)
                self._failures.succeeded()
            except Exception as exc:
                # Cannot tell (database down): step back; whoever leads must prove it again.
                self._failures.failed(exc)
                self._epoch = None
            if (was is None) != (self._epoch is None):
                log.info(
                    "lease %s: %s",
                    self.name,
                    "this process leads" if self._epoch is not None else "leadership lost",
                    extra={"lease": self.name, "owner": self.leases.owner},
                )
            return self._epoch is not None

    def resign(self) -> None:
        """Hand the lease on now (a clean stop), so another process need not wait for expiry."""
        with self._lock:
            if self.leases is not None and self._epoch is not None:
                try:
                    self.leases.release(self.name, self._epoch)
                except Exception:
                    log.debug("lease %s: release failed", self.name, exc_info=True)
            self._epoch = None


__all__ = ["Leadership", "Leases", "instance_id"]
