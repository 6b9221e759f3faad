"""The alert lifecycle: statuses and the transitions allowed between them.

=================  =========================================================
from               allowed to
=================  =========================================================
new                acknowledged, in_progress, resolved, false_positive
acknowledged       in_progress, resolved, false_positive
in_progress        resolved, false_positive
resolved           new, in_progress                       (reopen)
false_positive     new, in_progress                       (reopen)
=================  =========================================================

Setting the status an alert already has is a no-op, not an error (a retried PATCH or a bulk
action over a mixed selection succeeds); every other pair is an
:class:`~vigil.errors.InvalidTransitionError`. Going backwards among the open statuses
(``in_progress → acknowledged``, ``acknowledged → new``) is not allowed: once somebody has
touched an alert, escalation must not start again as if nobody had.

Leaving ``new`` counts as the acknowledgement (``acknowledged_at``), whatever the target status:
that is what stops escalation. Resolving or marking a false positive sets ``resolved_at``;
reopening clears it. Open alerts (every status but resolved and false_positive) absorb repeated
detections of the same fingerprint; closed ones never do.
"""

from __future__ import annotations

from enum import StrEnum

from vigil.errors import InvalidTransitionError


class AlertStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    FALSE_POSITIVE = "false_positive"

    @property
    def is_open(self) -> bool:
        return self not in CLOSED_STATUSES


CLOSED_STATUSES: frozenset[AlertStatus] = frozenset(
    {AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE}
)
OPEN_STATUSES: frozenset[AlertStatus] = frozenset(AlertStatus) - CLOSED_STATUSES

ALLOWED_TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.NEW: frozenset(
        {
            AlertStatus.ACKNOWLEDGED,
            AlertStatus.IN_PROGRESS,
            AlertStatus.RESOLVED,
            AlertStatus.FALSE_POSITIVE,
        }
    ),
    AlertStatus.ACKNOWLEDGED: frozenset(
        {AlertStatus.IN_PROGRESS, AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE}
    ),
    AlertStatus.IN_PROGRESS: frozenset({AlertStatus.RESOLVED, AlertStatus.FALSE_POSITIVE}),
    AlertStatus.RESOLVED: frozenset({AlertStatus.NEW, AlertStatus.IN_PROGRESS}),
    AlertStatus.FALSE_POSITIVE: frozenset({AlertStatus.NEW, AlertStatus.IN_PROGRESS}),
}


def check_transition(current: AlertStatus, target: AlertStatus) -> bool:
    """True when ``current → target`` changes something; False for a no-op (same status).

    Raises :class:`InvalidTransitionError` when the lifecycle forbids the move.
    """
    if current == target:
        return False
    if target not in ALLOWED_TRANSITIONS[current]:
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[current]))
        raise InvalidTransitionError(
            f"an alert cannot go from {current.value} to {target.value} (allowed: {allowed})"
        )
    return True
