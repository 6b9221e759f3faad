"""Settings of the metering domain (nested in :class:`vigil.config.Settings` as ``metering``).

Environment: ``VIGIL_METERING__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class MeteringSettings(BaseModel):
    pass
