"""Settings of the alerts domain (nested in :class:`vigil.config.Settings` as ``alerts``).

Environment: ``VIGIL_ALERTS__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class AlertsSettings(BaseModel):
    pass
