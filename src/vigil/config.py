"""One typed Settings object, built at start-up and passed down.

Nothing reads the environment at import time: call :func:`load_settings` from an entry point.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide configuration, from ``VIGIL_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="VIGIL_", extra="ignore")

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
    sigma_placeholders: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Values for Sigma `expand` placeholders, e.g. {'Admins_Workstations': [...]}.",
    )

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'vigil.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment plus explicit overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
