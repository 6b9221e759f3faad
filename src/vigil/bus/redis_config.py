"""Settings of the Redis Streams event queue (scale-out).

Meant to be nested in :class:`vigil.config.Settings` as ``redis_queue``
(environment ``VIGIL_REDIS_QUEUE__<FIELD>``); the queue itself is selected by ``queue_url``
(``VIGIL_QUEUE_URL=redis://…``). Until it is nested, :class:`RedisQueueEnvSettings` reads the
same variables when the queue is built (never at import time).
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RedisQueueSettings(BaseModel):
    stream: str = Field(default="vigil:events", description="Stream ingest appends to.")
    group: str = Field(
        default="vigil-workers", description="Consumer group of the detection workers."
    )
    dead_letter_stream: str = Field(
        default="vigil:events:dead",
        description="Where a record goes after max_deliveries failed deliveries.",
    )
    block_ms: int = Field(
        default=500,
        ge=0,
        le=30_000,
        description="How long an idle worker's read waits for new records in Redis.",
    )
    claim_idle_s: float = Field(
        default=60.0,
        gt=0,
        description="A record delivered but not acknowledged for this long is taken over by "
        "another worker (its first worker died or failed on it).",
    )
    claim_interval_s: float = Field(
        default=5.0, gt=0, description="How often a worker looks for records to take over."
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Deliveries after which a record that is never acknowledged is moved to "
        "the dead-letter stream.",
    )
    solo_after_deliveries: int = Field(
        default=3,
        ge=2,
        description="A record delivered this many times is retried alone, so one poison record "
        "cannot take a whole batch to the dead-letter stream with it.",
    )
    max_backlog: int = Field(
        default=2_000_000,
        ge=1,
        description="Records not yet acknowledged (undelivered + pending) beyond which ingest "
        "answers 503 with Retry-After instead of letting the stream grow without bound.",
    )
    backlog_check_s: float = Field(
        default=0.5, gt=0, description="How long a backlog figure is reused by publishers."
    )
    retry_after_s: int = Field(
        default=5, ge=1, description="Retry-After of the 503 answered under backpressure."
    )
    publish_chunk: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Records per atomic publish script (the scripts of one request are "
        "pipelined in one round trip).",
    )
    consumer_forget_s: float = Field(
        default=3600.0,
        gt=0,
        description="Consumers with nothing pending and idle this long are removed from the "
        "group (workers that were replaced or died).",
    )


class RedisQueueEnvSettings(RedisQueueSettings, BaseSettings):
    """The same settings from ``VIGIL_REDIS_QUEUE__<FIELD>``, for as long as ``Settings`` does
    not nest :class:`RedisQueueSettings` as ``redis_queue``."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_REDIS_QUEUE__", extra="ignore")
