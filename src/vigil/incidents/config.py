"""Settings of the incidents domain (nested in :class:`vigil.config.Settings` as ``incidents``).

Environment: ``VIGIL_INCIDENTS__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class IncidentsSettings(BaseModel):
    pass
