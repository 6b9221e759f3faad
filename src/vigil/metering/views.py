"""HTTP routes of the metering domain: ``GET /v1/usage`` (JSON or CSV) with quota forecasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.orm import Session

from vigil.api.deps import get_runtime, require, tenant_db
from vigil.errors import InvalidInputError
from vigil.identity.models import Tenant
from vigil.identity.principal import Permission, Principal
from vigil.metering.meter import meter_of
from vigil.metering.service import BufferedMeter, day_start, day_total
from vigil.metering.usage import (
    Granularity,
    UsageReport,
    forecast,
    to_csv,
    usage_rows,
)

router = APIRouter(prefix="/v1", tags=["usage"])

MAX_RANGE = timedelta(days=400)


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@router.get(
    "/usage",
    summary="Usage per hour or day (API calls by route, events and bytes, detections, alerts, "
    "notifications) with quota forecasts; CSV with format=csv",
    response_model=UsageReport,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def get_usage(
    request: Request,
    principal: Annotated[Principal, Depends(require(Permission.USAGE_READ))],
    session: Annotated[Session, Depends(tenant_db)],
    start: Annotated[datetime | None, Query(description="Default: 7 days ago.")] = None,
    end: Annotated[datetime | None, Query(description="Default: now.")] = None,
    granularity: Granularity = Granularity.DAY,
    metric: Annotated[list[str] | None, Query(max_length=20)] = None,
    by_route: Annotated[bool, Query(description="Split api_calls by route.")] = True,
    format: Literal["json", "csv"] = "json",
) -> object:
    now = datetime.now(UTC)
    end_at = _utc(end) if end else now + timedelta(seconds=1)
    start_at = _utc(start) if start else end_at - timedelta(days=7)
    if start_at >= end_at:
        raise InvalidInputError("start must be before end", field="query.start")
    if end_at - start_at > MAX_RANGE:
        raise InvalidInputError("at most 400 days per request", field="query.start")
    runtime = get_runtime(request)
    meter = meter_of(runtime)
    if isinstance(meter, BufferedMeter):
        meter.flush()  # the report includes what this process counted a moment ago
    rows = usage_rows(
        session,
        start=start_at,
        end=end_at,
        granularity=granularity,
        metrics=metric or (),
        by_dimension=by_route,
    )
    if format == "csv":
        return Response(
            to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="vigil-usage.csv"'},
        )
    totals: dict[str, int] = {}
    for row in rows:
        totals[row.metric] = totals.get(row.metric, 0) + row.value
    tenant = session.get(Tenant, principal.tenant_id)
    forecasts = []
    for name, quota in sorted(((tenant.quotas or {}) if tenant else {}).items()):
        used = day_total(
            session, tenant_id=principal.tenant_id, metric=name, day=day_start(now.timestamp())
        )
        forecasts.append(forecast(session, metric=name, quota=int(quota), used_today=used, now=now))
    return UsageReport(
        start=start_at,
        end=end_at,
        granularity=granularity,
        items=rows,
        totals=totals,
        forecasts=forecasts,
    )
