"""Settings of the pipeline domain (nested in :class:`vigil.config.Settings` as ``pipeline``).

Environment: ``VIGIL_PIPELINE__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class PipelineSettings(BaseModel):
    pass
