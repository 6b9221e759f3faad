"""Settings of the incidents domain (nested in :class:`vigil.config.Settings` as ``incidents``).

Environment: ``VIGIL_INCIDENTS__<FIELD>``, e.g. ``VIGIL_INCIDENTS__GROUPING_WINDOW_S=7200`` or
``VIGIL_INCIDENTS__SLA__CRITICAL__ACKNOWLEDGE_S=600``.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from vigil.events.envelope import Severity


class SlaTarget(BaseModel):
    acknowledge_s: float = Field(gt=0, description="Time to acknowledge, in seconds.")
    resolve_s: float = Field(gt=0, description="Time to resolve, in seconds.")


_MIN = 60.0
_HOUR = 3600.0
_DAY = 86400.0


class SlaSettings(BaseModel):
    critical: SlaTarget = SlaTarget(acknowledge_s=15 * _MIN, resolve_s=4 * _HOUR)
    high: SlaTarget = SlaTarget(acknowledge_s=1 * _HOUR, resolve_s=24 * _HOUR)
    medium: SlaTarget = SlaTarget(acknowledge_s=4 * _HOUR, resolve_s=72 * _HOUR)
    low: SlaTarget = SlaTarget(acknowledge_s=24 * _HOUR, resolve_s=7 * _DAY)
    info: SlaTarget = SlaTarget(acknowledge_s=24 * _HOUR, resolve_s=7 * _DAY)

    def for_severity(self, severity: Severity) -> SlaTarget:
        target: SlaTarget = getattr(self, severity.value)
        return target


class IncidentsSettings(BaseModel):
    auto_group: bool = Field(
        default=True, description="Group new alerts into incidents automatically."
    )
    grouping_window_s: float = Field(
        default=24 * _HOUR,
        gt=0,
        description="A new alert joins an open incident of its entity or correlation id only "
        "when that incident saw an alert at most this long before.",
    )
    open_min_severity: Severity = Field(
        default=Severity.MEDIUM,
        description="A new alert that joins no incident opens one when its severity is at least "
        "this.",
    )
    sla: SlaSettings = Field(default_factory=SlaSettings)
    escalation_interval_s: float = Field(
        default=5.0, gt=0, description="How often the escalation worker looks for due steps."
    )
    escalation_batch: int = Field(
        default=500, ge=1, description="Most steps (and SLA breaches) handled per tick."
    )
