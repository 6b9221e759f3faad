"""Settings of the metering domain (nested in :class:`vigil.config.Settings` as ``metering``).

Environment: ``VIGIL_METERING__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class MeteringSettings(BaseModel):
    enabled: bool = Field(default=True, description="Count usage (off: the null meter).")
    flush_interval_s: float = Field(
        default=5.0, gt=0, le=300, description="How often in-memory counts go to the database."
    )
    quota_refresh_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a day's flushed total is trusted by quota checks (other replicas' "
        "usage shows up after this long at most).",
    )
    count_api_calls: bool = Field(default=True, description="Count API calls per route.")
