"""The incident lifecycle.

==============  ===================================================  =========================
from            allowed to                                           meaning
==============  ===================================================  =========================
open            acknowledged, investigating, contained, resolved     nobody has looked yet
acknowledged    investigating, contained, resolved                   somebody owns it
investigating   contained, resolved                                  scoping, root cause
contained       investigating, resolved                              threat stopped (back to
                                                                     investigating when
                                                                     containment fails)
resolved        closed, investigating                                fixed; reopen goes to
                                                                     investigating
closed          (none)                                               post-incident review done
==============  ===================================================  =========================

Setting the current status again is a no-op. Leaving ``open`` is the acknowledgement (stops the
time-to-acknowledge SLA and escalation). ``resolved`` stops the time-to-resolve SLA; reopening
clears ``resolved_at`` and lets the SLA run again (a breach already flagged stays flagged).
``closed`` is final: alerts that arrive later open a new incident. Open incidents (everything
before resolved) are the ones new alerts join automatically.
"""

from __future__ import annotations

from enum import StrEnum

from vigil.errors import InvalidTransitionError


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE_STATUSES: frozenset[IncidentStatus] = frozenset(
    {
        IncidentStatus.OPEN,
        IncidentStatus.ACKNOWLEDGED,
        IncidentStatus.INVESTIGATING,
        IncidentStatus.CONTAINED,
    }
)

ALLOWED_TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset(
        {
            IncidentStatus.ACKNOWLEDGED,
            IncidentStatus.INVESTIGATING,
            IncidentStatus.CONTAINED,
            IncidentStatus.RESOLVED,
        }
    ),
    IncidentStatus.ACKNOWLEDGED: frozenset(
        {IncidentStatus.INVESTIGATING, IncidentStatus.CONTAINED, IncidentStatus.RESOLVED}
    ),
    IncidentStatus.INVESTIGATING: frozenset({IncidentStatus.CONTAINED, IncidentStatus.RESOLVED}),
    IncidentStatus.CONTAINED: frozenset({IncidentStatus.INVESTIGATING, IncidentStatus.RESOLVED}),
    IncidentStatus.RESOLVED: frozenset({IncidentStatus.CLOSED, IncidentStatus.INVESTIGATING}),
    IncidentStatus.CLOSED: frozenset(),
}


def check_transition(current: IncidentStatus, target: IncidentStatus) -> bool:
    """True when ``current → target`` changes something, False for a no-op; raises
    :class:`InvalidTransitionError` when the lifecycle forbids it."""
    if current == target:
        return False
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current])) or "none: closed is final"
        raise InvalidTransitionError(
            f"an incident cannot go from {current.value} to {target.value} (allowed: {allowed})"
        )
    return True
