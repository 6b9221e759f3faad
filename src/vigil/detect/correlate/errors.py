"""Errors raised by the correlation engine."""

from __future__ import annotations

from vigil.errors import VigilError


class CorrelationError(VigilError):
    """A correlation rule cannot be compiled or evaluated.

    The message always names the rule (id and title) and says why.
    """

    def __init__(self, rule_label: str, reason: str) -> None:
        self.rule_label = rule_label
        self.reason = reason
        super().__init__(f"correlation rule {rule_label}: {reason}")
