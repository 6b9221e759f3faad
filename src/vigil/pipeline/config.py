"""Settings of the pipeline domain (nested in :class:`vigil.config.Settings` as ``pipeline``).

Environment: ``VIGIL_PIPELINE__<FIELD>``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class PipelineSettings(BaseModel):
    batch_size: int = Field(
        default=1000, ge=1, le=50_000, description="Queue records per detection transaction."
    )
    idle_poll_s: float = Field(
        default=1.0,
        gt=0,
        description="How long an idle worker sleeps before looking again; ingest wakes it at "
        "once, so this only bounds the delay for records written by another process.",
    )
    worker_mode: Literal["thread", "process"] = Field(
        default="process",
        description="Run detection in a thread of the API process, or in a child process that "
        "reads the same queue (uses the second core; see vigil.pipeline.worker).",
    )
    consumer: str = Field(default="detection", description="Queue consumer name (offset key).")
    hot_reload: bool = Field(default=True, description="Reload rules when their files change.")
    reload_interval_s: float = Field(
        default=2.0,
        gt=0,
        description=(
            "How often rule folders are checked for added, removed or renamed files; every "
            "5th check also looks at each file (an edit in place shows within 5 intervals)."
        ),
    )
    processed_retention_s: float = Field(
        default=600.0, ge=0, description="Processed queue records without event_id kept this long."
    )
    purge_interval_s: float = Field(
        default=60.0, gt=0, description="How often processed queue records are purged."
    )
    overrides_refresh_s: float = Field(
        default=1.0,
        gt=0,
        description="How often the worker checks for changed per-tenant rule settings.",
    )
    correlation_partitions: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Correlation state is split by (tenant, correlation, group-by values) into "
        "this many partitions, each run by one worker at a time (vigil.pipeline.correlator). "
        "Every process of a deployment must use the same count; changing it restarts windows.",
    )
    correlation_snapshot_interval_s: float = Field(
        default=30.0,
        gt=0,
        description="How often a partition's correlation state is written to the database "
        "(also on a clean stop); after a crash the inputs since are fed again.",
    )
    correlation_poll_s: float = Field(
        default=0.5,
        gt=0,
        description="How often the correlator looks for inputs written by other processes "
        "(inputs of its own process wake it at once).",
    )
    correlation_lease_s: float = Field(
        default=15.0,
        gt=0,
        description="How long a worker's claim on a correlation partition lasts without renewal "
        "(PostgreSQL). A worker that dies or freezes loses its partitions to another after "
        "this long; it is renewed every third of it.",
    )
    correlation_input_retention_s: float = Field(
        default=3600.0,
        ge=0,
        description="Correlation inputs already covered by a snapshot are kept this long.",
    )
