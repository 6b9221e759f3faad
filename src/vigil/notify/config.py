"""Settings of the notify domain (nested in :class:`vigil.config.Settings` as ``notify``).

Environment: ``VIGIL_NOTIFY__<FIELD>``.
"""

from __future__ import annotations

from pydantic import BaseModel


class NotifySettings(BaseModel):
    pass
