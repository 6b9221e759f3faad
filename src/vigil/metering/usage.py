"""Usage reports (per hour or day, JSON or CSV) and the quota forecast, from ``usage_counters``
in a tenant-scoped session."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from vigil.metering.models import UsageCounter


class Granularity(StrEnum):
    HOUR = "hour"
    DAY = "day"


class UsageRow(BaseModel):
    period_start: datetime
    metric: str
    dimension: str = Field(description="e.g. 'GET /v1/alerts' for api_calls; '' otherwise.")
    value: int


class QuotaForecast(BaseModel):
    metric: str
    quota_per_day: int
    used_today: int
    remaining_today: int
    hourly_rate: float = Field(description="Average per hour over the last 6 hours.")
    projected_today: int = Field(description="used_today + hourly_rate x hours left today.")
    exhausted_at: datetime | None = Field(
        description="When today's quota runs out at the current rate (null: not today)."
    )
    daily_trend: float = Field(description="Slope of the daily totals (per day, last 14 days).")
    days_until_quota_reached: float | None = Field(
        description="When the daily total's linear trend reaches the quota (null: never)."
    )


class UsageReport(BaseModel):
    start: datetime
    end: datetime
    granularity: Granularity
    items: list[UsageRow]
    totals: dict[str, int]
    forecasts: list[QuotaForecast]


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _period(hour: datetime, granularity: Granularity) -> datetime:
    hour = _utc(hour)
    if granularity == Granularity.DAY:
        return hour.replace(hour=0, minute=0, second=0, microsecond=0)
    return hour


def usage_rows(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    granularity: Granularity,
    metrics: Sequence[str] = (),
    by_dimension: bool = True,
) -> list[UsageRow]:
    query = select(
        UsageCounter.hour, UsageCounter.metric, UsageCounter.dimension, UsageCounter.value
    ).where(UsageCounter.hour >= start, UsageCounter.hour < end)
    if metrics:
        query = query.where(UsageCounter.metric.in_(list(metrics)))
    sums: defaultdict[tuple[datetime, str, str], int] = defaultdict(int)
    for hour, metric, dimension, value in session.execute(query):
        sums[(_period(hour, granularity), metric, dimension if by_dimension else "")] += value
    return [
        UsageRow(period_start=p, metric=m, dimension=d, value=v)
        for (p, m, d), v in sorted(sums.items())
    ]


def to_csv(rows: Sequence[UsageRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period_start", "metric", "dimension", "value"])
    for row in rows:
        writer.writerow([row.period_start.isoformat(), row.metric, row.dimension, row.value])
    return out.getvalue()


def linear_trend(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of values at x = 0, 1, 2, ..."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    if n == 1:
        return float(values[0]), 0.0
    mean_x = (n - 1) / 2
    mean_y = sum(values) / n
    sxx = sum((x - mean_x) ** 2 for x in range(n))
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values))
    slope = sxy / sxx
    return mean_y - slope * mean_x, slope


def forecast(
    session: Session,
    *,
    metric: str,
    quota: int,
    used_today: int,
    now: datetime,
) -> QuotaForecast:
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # hourly rate over the last 6 hours (flushed counts; used_today may include unflushed ones)
    since = now - timedelta(hours=6)
    recent = sum(
        r.value
        for r in usage_rows(
            session,
            start=since,
            end=now + timedelta(hours=1),
            granularity=Granularity.HOUR,
            metrics=[metric],
            by_dimension=False,
        )
    )
    rate = recent / 6.0
    hours_left = (today + timedelta(days=1) - now).total_seconds() / 3600
    remaining = quota - used_today
    exhausted_at = None
    if remaining <= 0:
        exhausted_at = now
    elif rate > 0 and remaining / rate <= hours_left:
        exhausted_at = now + timedelta(hours=remaining / rate)
    daily = usage_rows(
        session,
        start=today - timedelta(days=14),
        end=today,
        granularity=Granularity.DAY,
        metrics=[metric],
        by_dimension=False,
    )
    by_day = {r.period_start: r.value for r in daily}
    series = [float(by_day.get(today - timedelta(days=14 - i), 0)) for i in range(14)]
    series.append(float(used_today) + rate * hours_left)  # today, projected
    intercept, slope = linear_trend(series)
    days_until = None
    if series[-1] >= quota:
        days_until = 0.0
    elif slope > 0:
        x = (quota - intercept) / slope  # x of today is len(series) - 1
        days_until = max(0.0, round(x - (len(series) - 1), 2))
    return QuotaForecast(
        metric=metric,
        quota_per_day=quota,
        used_today=used_today,
        remaining_today=max(0, remaining),
        hourly_rate=round(rate, 3),
        projected_today=int(used_today + rate * hours_left),
        exhausted_at=exhausted_at,
        daily_trend=round(slope, 3),
        days_until_quota_reached=days_until,
    )
