"""One typed Settings object, built at start-up and passed down.

Nothing reads the environment at import time: call :func:`load_settings` from an entry point.
Domain settings are nested models (``settings.notify.smtp_host``); their environment variables
use a double underscore: ``VIGIL_NOTIFY__SMTP_HOST``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.alerts.config import AlertsSettings
from vigil.bus.redis_config import RedisQueueSettings
from vigil.identity.config import IdentitySettings
from vigil.incidents.config import IncidentsSettings
from vigil.ingest.config import IngestSettings
from vigil.metering.config import MeteringSettings
from vigil.notify.config import NotifySettings
from vigil.pipeline.config import PipelineSettings


class Settings(BaseSettings):
    """Process-wide configuration, from ``VIGIL_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIL_", env_nested_delimiter="__", extra="ignore"
    )

    home: Path = Field(default=Path(".vigil"), description="State directory (VIGIL_HOME).")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default is SQLite under home."
    )
    queue_url: str | None = Field(default=None, description="redis:// URL for scale-out.")
    audit_signing_key: str | None = Field(
        default=None,
        description="Ledger signing key (PRIVATE+KEY+... text or a file path); default: "
        "the key created under home/keys.",
    )
    audit_origin: str = Field(
        default="vigil.local/audit", description="Origin line of the ledger's checkpoints."
    )
    audit_checkpoint_interval_s: float = Field(
        default=300.0, gt=0, description="How often `vigil serve` signs a new checkpoint."
    )
    sigma_placeholders: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Values for Sigma `expand` placeholders, e.g. {'Admins_Workstations': [...]}.",
    )
    rules_dirs: list[Path] = Field(
        default_factory=list, description="Sigma rule files/folders `vigil serve` loads."
    )
    mapping_files: list[Path] = Field(
        default_factory=list, description="Extra logsource mapping files."
    )
    log_level: str = Field(default="info", description="Log level of the JSON logs.")

    redis_queue: RedisQueueSettings = Field(
        default_factory=RedisQueueSettings,
        description="Redis Streams queue (used when queue_url is redis://).",
    )
    identity: IdentitySettings = Field(default_factory=IdentitySettings)
    metering: MeteringSettings = Field(default_factory=MeteringSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    incidents: IncidentsSettings = Field(default_factory=IncidentsSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'vigil.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
