"""Usage metering: the buffered meter every domain reports to, quotas, usage reports and the
quota forecast.

:class:`BufferedMeter` counts in memory (a lock and a dict update per call, so ingest at tens
of thousands of events per second is not slowed) and a loop worker flushes the counts into
``usage_counters`` by upsert (``value = value + n``). Quota checks compare the day's total in the
database (re-read at most every ``quota_refresh_s``) plus what this process has not flushed yet.
Several replicas each flush their own counts into the same rows; each sees the others' usage
after its next refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from vigil.errors import QuotaExceededError
from vigil.metering.models import UsageCounter
from vigil.obs.metrics import QUOTA_EXCEEDED, USAGE_FLUSHES
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.metering")

HOUR = 3600
#: How SQLAlchemy writes a DateTime on SQLite.
_SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"
DAY = 86400
#: Metrics with a daily quota, and the words the API uses for them.
QUOTA_METRICS = ("events", "event_bytes", "api_calls", "detections", "alerts", "notifications")


def hour_start(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts // HOUR) * HOUR, UTC)


def day_start(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts // DAY) * DAY, UTC)


def seconds_to_midnight(ts: float) -> int:
    return max(1, DAY - int(ts) % DAY)


def _upsert(session: Session, rows: list[dict[str, object]]) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(UsageCounter).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "metric", "dimension", "hour"],
        set_={"value": UsageCounter.value + stmt.excluded.value},
    )
    session.execute(stmt)


def count_committed(
    session: Session, *, counts: Mapping[tuple[str, str], int], now: datetime
) -> None:
    """Add ``{(tenant, metric): amount}`` to the hour of ``now`` inside the caller's transaction.

    For counts that must follow a transaction exactly: detections and alerts are recorded by the
    detection worker (often a child process, which has no meter), and counted this way they
    exist if and only if the alerts commit; a redelivered batch that records nothing counts
    nothing. One upsert per call. Rows go in key order, the order a flush locks them in, so a
    worker and a flushing replica never deadlock on PostgreSQL.
    """
    hour = hour_start(now.timestamp())
    rows = [
        {"tenant_id": tenant, "metric": metric, "dimension": "", "hour": hour, "value": amount}
        for (tenant, metric), amount in sorted(counts.items())
        if amount > 0
    ]
    if not rows:
        return
    if session.get_bind().dialect.name == "sqlite":
        # On the driver: SQLAlchemy's upsert costs the worker's transaction ~0.5-1 ms more.
        # ``hour`` in the text form SQLAlchemy writes (so flushes hit the same rows).
        cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(
                "INSERT INTO usage_counters (tenant_id, metric, dimension, hour, value) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, metric, dimension, hour) "
                "DO UPDATE SET value = value + excluded.value",
                [
                    (r["tenant_id"], r["metric"], "", hour.strftime(_SQLITE_DATETIME), r["value"])
                    for r in rows
                ],
            )
        finally:
            cursor.close()
        return
    _upsert(session, rows)


def day_total(session: Session, *, tenant_id: str, metric: str, day: datetime) -> int:
    """The tenant's flushed total of ``metric`` on the UTC ``day`` (explicit tenant filter:
    called from unscoped sessions)."""
    value = session.execute(
        select(func.coalesce(func.sum(UsageCounter.value), 0)).where(
            UsageCounter.tenant_id == tenant_id,
            UsageCounter.metric == metric,
            UsageCounter.hour >= day,
            UsageCounter.hour < day + timedelta(days=1),
        )
    ).scalar_one()
    return int(value)


@dataclass
class _DayTotal:
    day: datetime
    flushed: int
    read_at: float


class BufferedMeter:
    """The :class:`vigil.metering.meter.Meter` of a running process."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        quotas_of: QuotaSource,
        quota_refresh_s: float = 30.0,
        clock: object = time.time,
    ) -> None:
        self.sessions = sessions
        self.quotas_of = quotas_of
        self.quota_refresh_s = quota_refresh_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: defaultdict[tuple[str, str, str, float], int] = defaultdict(int)
        # (tenant, metric) → the day's unflushed amount of this process
        self._unflushed_day: defaultdict[tuple[str, str, datetime], int] = defaultdict(int)
        self._day_totals: dict[tuple[str, str], _DayTotal] = {}
        # counts being written by a flush right now (still counted by quota checks)
        self._in_flight: dict[tuple[str, str, datetime], int] = {}

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    # --- Meter --------------------------------------------------------------------------------

    def add(self, tenant_id: str, metric: str, amount: int = 1, *, dimension: str = "") -> None:
        if amount <= 0:
            return
        now = self._now()
        hour = float(int(now // HOUR) * HOUR)
        with self._lock:
            self._pending[(tenant_id, metric, dimension[:200], hour)] += amount
            self._unflushed_day[(tenant_id, metric, day_start(now))] += amount

    def check_quota(self, tenant_id: str, metric: str, amount: int = 1) -> None:
        quota = self.quotas_of(tenant_id).get(metric)
        if quota is None:
            return
        used = self.used_today(tenant_id, metric)
        if used + amount > quota:
            QUOTA_EXCEEDED.labels(metric).inc()
            raise QuotaExceededError(
                f"daily quota for {metric} exhausted: {used} of {quota} used today (UTC); "
                f"this request needs {amount}",
                retry_after=seconds_to_midnight(self._now()),
            )

    # --- reading --------------------------------------------------------------------------------

    def used_today(self, tenant_id: str, metric: str) -> int:
        now = self._now()
        today = day_start(now)
        cached = self._day_totals.get((tenant_id, metric))
        if cached is None or cached.day != today or now - cached.read_at > self.quota_refresh_s:
            session = system_session(self.sessions)
            try:
                flushed = day_total(session, tenant_id=tenant_id, metric=metric, day=today)
            finally:
                session.close()
            cached = _DayTotal(today, flushed, now)
            with self._lock:
                self._day_totals[(tenant_id, metric)] = cached
        key = (tenant_id, metric, today)
        return cached.flushed + self._unflushed_day.get(key, 0) + self._in_flight.get(key, 0)

    def pending(self) -> dict[tuple[str, str, str, float], int]:
        with self._lock:
            return dict(self._pending)

    # --- flushing -------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write the pending counts; returns how many rows were upserted. On failure the counts
        are kept for the next attempt."""
        with self._lock:
            pending, self._pending = self._pending, defaultdict(int)
            unflushed, self._unflushed_day = self._unflushed_day, defaultdict(int)
            self._in_flight = dict(unflushed)
        if not pending:
            return 0
        rows: list[dict[str, object]] = [
            {
                "tenant_id": tenant,
                "metric": metric,
                "dimension": dimension,
                "hour": datetime.fromtimestamp(hour, UTC),
                "value": value,
            }
            for (tenant, metric, dimension, hour), value in sorted(pending.items())
        ]
        session = system_session(self.sessions)
        try:
            for start in range(0, len(rows), 500):
                _upsert(session, rows[start : start + 500])
            session.commit()
        except Exception:
            session.rollback()
            USAGE_FLUSHES.labels("error").inc()
            with self._lock:
                for key, value in pending.items():
                    self._pending[key] += value
                for key2, value in unflushed.items():
                    self._unflushed_day[key2] += value
                self._in_flight = {}
            raise
        finally:
            session.close()
        USAGE_FLUSHES.labels("ok").inc()
        with self._lock:
            self._in_flight = {}
            for tenant, metric, _day in unflushed:
                # re-read the day's total at the next check (it now includes these counts)
                self._day_totals.pop((tenant, metric), None)
        return len(rows)


class QuotaSource:
    """Tenant quotas (``tenants.quotas``), cached for ``ttl_s`` and dropped on change."""

    def __init__(self, sessions: sessionmaker[Session], ttl_s: float = 30.0) -> None:
        self.sessions = sessions
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, dict[str, int]]] = {}

    def __call__(self, tenant_id: str) -> dict[str, int]:
        from vigil.identity.models import Tenant

        hit = self._cache.get(tenant_id)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        session = system_session(self.sessions)
        try:
            tenant = session.get(Tenant, tenant_id)
            quotas = {str(k): int(v) for k, v in (tenant.quotas or {}).items()} if tenant else {}
        finally:
            session.close()
        self._cache[tenant_id] = (now + self.ttl_s, quotas)
        return quotas

    def forget(self, tenant_ids: Iterable[str] = (), everything: bool = False) -> None:
        if everything:
            self._cache.clear()
        for tenant_id in tenant_ids:
            self._cache.pop(tenant_id, None)
