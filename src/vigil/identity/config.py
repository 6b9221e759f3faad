"""Settings of the identity domain (nested in :class:`vigil.config.Settings` as ``identity``).

Environment: ``VIGIL_IDENTITY__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class IdentitySettings(BaseModel):
    pass
