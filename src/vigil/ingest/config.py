"""Settings of the ingest domain (nested in :class:`vigil.config.Settings` as ``ingest``).

Environment: ``VIGIL_INGEST__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class IngestSettings(BaseModel):
    pass
