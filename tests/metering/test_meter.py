"""The buffered meter, quotas and usage reports on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from vigil.errors import QuotaExceededError
from vigil.metering.models import UsageCounter
from vigil.metering.service import BufferedMeter, QuotaSource, count_committed, day_start
from vigil.metering.usage import Granularity, forecast, linear_trend, to_csv, usage_rows
from vigil.store import session_factory, session_scope
from vigil.store.tenancy import tenant_session

T0 = datetime(2026, 3, 10, 9, 30, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def factory(db_engine: Engine) -> sessionmaker[Session]:
    return session_factory(db_engine)


def _meter(
    factory: sessionmaker[Session], clock: Clock, quotas: dict[str, dict[str, int]] | None = None
) -> BufferedMeter:
    table = quotas or {}
    return BufferedMeter(
        sessions=factory,
        quotas_of=lambda tenant: table.get(tenant, {}),  # type: ignore[arg-type]
        quota_refresh_s=0,
        clock=clock,
    )


def test_counts_are_buffered_then_upserted_per_hour(factory: sessionmaker[Session]) -> None:
    clock = Clock(T0)
    meter = _meter(factory, clock)
    meter.add("t1", "events", 100)
    meter.add("t1", "events", 50)
    meter.add("t1", "api_calls", 1, dimension="GET /v1/alerts")
    meter.add("t2", "events", 7)
    with session_scope(factory) as s:
        assert s.execute(select(UsageCounter)).first() is None  # nothing written yet
    assert meter.flush() == 3
    clock.t += 3600  # next hour
    meter.add("t1", "events", 5)
    meter.flush()
    other = _meter(factory, Clock(T0))  # another replica, same hour
    other.add("t1", "events", 1)
    other.flush()
    with session_scope(factory) as s:
        rows = {
            (r.tenant_id, r.metric, r.dimension, r.hour.replace(tzinfo=UTC)): r.value
            for r in s.execute(select(UsageCounter)).scalars()
        }
    h9 = datetime(2026, 3, 10, 9, tzinfo=UTC)
    assert rows[("t1", "events", "", h9)] == 151
    assert rows[("t1", "events", "", h9 + timedelta(hours=1))] == 5
    assert rows[("t1", "api_calls", "GET /v1/alerts", h9)] == 1
    assert rows[("t2", "events", "", h9)] == 7


def test_quota_counts_flushed_and_unflushed_usage(factory: sessionmaker[Session]) -> None:
    clock = Clock(T0)
    meter = _meter(factory, clock, {"t1": {"events": 100}})
    meter.check_quota("t1", "events", 100)
    meter.add("t1", "events", 60)
    meter.flush()
    meter.add("t1", "events", 30)
    meter.check_quota("t1", "events", 10)
    with pytest.raises(QuotaExceededError) as err:
        meter.check_quota("t1", "events", 11)
    assert "90 of 100" in str(err.value)
    midnight = day_start(T0) + timedelta(days=1)
    assert err.value.retry_after == int(midnight.timestamp() - T0)
    meter.check_quota("t2", "events", 10**9)  # no quota
    clock.t += 86400  # a new day starts from zero
    meter.check_quota("t1", "events", 100)


def test_failed_flush_keeps_the_counts(factory: sessionmaker[Session]) -> None:
    unusable = create_engine("sqlite:///file:nowhere?mode=ro&uri=true")
    broken = BufferedMeter(
        sessions=session_factory(unusable), quotas_of=QuotaSource(factory), clock=Clock(T0)
    )
    broken.add("t1", "events", 3)
    with pytest.raises(OperationalError):
        broken.flush()
    assert sum(broken.pending().values()) == 3
    broken.sessions = factory  # storage is back
    assert broken.flush() == 1
    assert broken.pending() == {}


def test_committed_counts_share_rows_with_the_meter_and_follow_the_transaction(
    factory: sessionmaker[Session],
) -> None:
    clock = Clock(T0)
    meter = _meter(factory, clock, {"t1": {"alerts": 10}})
    meter.add("t1", "alerts", 2)
    meter.flush()
    at = datetime.fromtimestamp(T0 + 60, UTC)
    with factory() as s:
        count_committed(s, counts={("t1", "alerts"): 3, ("t1", "detections"): 4}, now=at)
        s.commit()
        count_committed(s, counts={("t1", "alerts"): 100}, now=at)
        s.rollback()  # work that never happened counts nothing
        count_committed(s, counts={("t2", "alerts"): 1, ("t2", "detections"): 0}, now=at)
        s.commit()
    meter.add("t1", "alerts", 1)
    meter.flush()
    with session_scope(factory) as s:
        rows = {(r.tenant_id, r.metric): r.value for r in s.execute(select(UsageCounter)).scalars()}
    # one row per tenant, metric and hour, whoever counted
    assert rows == {("t1", "alerts"): 6, ("t1", "detections"): 4, ("t2", "alerts"): 1}
    assert meter.used_today("t1", "alerts") == 6
    with pytest.raises(QuotaExceededError):
        meter.check_quota("t1", "alerts", 5)


def test_usage_rows_csv_and_tenant_scope(factory: sessionmaker[Session]) -> None:
    clock = Clock(T0)
    meter = _meter(factory, clock)
    for hour in range(30):
        clock.t = T0 + hour * 3600
        meter.add("t1", "events", 10)
        meter.add("t1", "api_calls", 2, dimension="POST /v1/events")
        meter.add("t2", "events", 999)
    meter.flush()
    start = datetime(2026, 3, 10, tzinfo=UTC)
    with tenant_session(factory, "t1") as s:
        daily = usage_rows(
            s, start=start, end=start + timedelta(days=3), granularity=Granularity.DAY
        )
        hourly = usage_rows(
            s,
            start=start,
            end=start + timedelta(days=3),
            granularity=Granularity.HOUR,
            metrics=["events"],
        )
    events = [r for r in daily if r.metric == "events"]
    assert [(r.period_start.day, r.value) for r in events] == [(10, 150), (11, 150)]
    assert len(hourly) == 30 and all(r.value == 10 for r in hourly)
    text = to_csv(daily)
    assert text.splitlines()[0] == "period_start,metric,dimension,value"
    assert "POST /v1/events" in text and "999" not in text


def test_linear_trend() -> None:
    assert linear_trend([1, 2, 3, 4]) == pytest.approx((1.0, 1.0))
    assert linear_trend([5]) == (5.0, 0.0)
    assert linear_trend([]) == (0.0, 0.0)


def test_forecast_projects_exhaustion(factory: sessionmaker[Session]) -> None:
    now = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
    clock = Clock(now.timestamp())
    meter = _meter(factory, clock)
    for day in range(14, 0, -1):  # growing daily usage: 100, 200, ... over the last 14 days
        clock.t = (now - timedelta(days=day)).timestamp()
        meter.add("t1", "events", 100 * (15 - day))
    for hour in range(6):  # 600 per hour over the last six hours
        clock.t = (now - timedelta(hours=hour, minutes=30)).timestamp()
        meter.add("t1", "events", 600)
    meter.flush()
    with tenant_session(factory, "t1") as s:
        f = forecast(s, metric="events", quota=10_000, used_today=3600, now=now)
    assert f.hourly_rate == pytest.approx(600)
    assert f.remaining_today == 6400
    assert f.exhausted_at is not None
    assert abs((f.exhausted_at - now).total_seconds() / 3600 - 6400 / 600) < 0.01
    assert f.daily_trend > 0
    assert f.days_until_quota_reached == 0.0  # today's projection (10,800) is over the quota
    with tenant_session(factory, "t1") as s:
        relaxed = forecast(s, metric="events", quota=100_000, used_today=3600, now=now)
    assert relaxed.exhausted_at is None
    assert relaxed.days_until_quota_reached is not None and relaxed.days_until_quota_reached > 1
