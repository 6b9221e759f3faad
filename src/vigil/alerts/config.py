"""Settings of the alerts domain (nested in :class:`vigil.config.Settings` as ``alerts``).

Environment: ``VIGIL_ALERTS__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class AlertsSettings(BaseModel):
    suppression_window_s: float = Field(
        default=3600.0,
        gt=0,
        description="A detection folds into the open alert with its fingerprint when that alert "
        "was last seen at most this long before it; rules may override it.",
    )
    context_max_bytes: int = Field(
        default=8192,
        ge=256,
        le=1_048_576,
        description="Size bound of the event fields an alert keeps as context (JSON bytes).",
    )
    context_value_max_chars: int = Field(
        default=1024, ge=16, description="Longer string values in the context are cut."
    )
    event_ids_per_detection: int = Field(
        default=100, ge=1, description="Matched event ids kept per detection."
    )
