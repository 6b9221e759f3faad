"""Tables of the metering domain.

``usage_counters`` holds one row per tenant, metric, dimension and UTC hour; day totals are sums
of hours. Rows only ever grow by upsert (``value = value + :n``), so several replicas can flush
their in-memory counts into the same rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from vigil.store.base import Base
from vigil.store.tenancy import TenantScoped

CounterId = BigInteger().with_variant(Integer(), "sqlite")


class UsageCounter(TenantScoped, Base):
    __tablename__ = "usage_counters"
    __table_args__ = (UniqueConstraint("tenant_id", "metric", "dimension", "hour"),)

    id: Mapped[int] = mapped_column(CounterId, primary_key=True, autoincrement=True)
    metric: Mapped[str] = mapped_column(String(64), nullable=False)
    #: e.g. the route template for "api_calls"; "" when the metric has no dimension.
    dimension: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    #: Start of the UTC hour counted.
    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
