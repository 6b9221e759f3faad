"""Value types shared by the correlation compiler, the engine and their callers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigil.events.model import EventRecord


@dataclass(frozen=True, slots=True)
class RuleRef:
    """Identifies a rule whose match is fed into the engine (a base rule or a correlation)."""

    id: str | None
    name: str | None
    title: str

    @property
    def label(self) -> str:
        """Human-readable identification used in messages."""
        return f"{self.id or self.name or '-'} ({self.title!r})"


@dataclass(frozen=True, slots=True)
class Contribution:
    """One event that contributed to a correlation hit and the base rule it matched."""

    rule: RuleRef
    event: EventRecord


@dataclass(frozen=True, slots=True)
class CorrelationRuleInfo:
    """The metadata of a correlation rule carried by each of its hits."""

    id: str | None
    name: str | None
    title: str
    level: str | None
    tags: tuple[str, ...]
    type: str

    @property
    def ref(self) -> RuleRef:
        return RuleRef(self.id, self.name, self.title)


@dataclass(frozen=True, slots=True)
class CorrelationHit:
    """A correlation rule matched for one group-by key in one window.

    ``window_start``/``window_end`` (see the engine docs): for threshold-crossing evaluation
    the timestamps of the earliest event of the window and of the event with which the
    condition became true (``end - start <= timespan``); for window-close evaluation the
    evaluated interval ``[first, first + timespan]``, ``first`` being its earliest event.
    ``window_end`` is also the time at which a chained (outer) correlation sees this hit.

    ``events`` holds at most the engine's ``max_hit_events`` contributions (events of chained
    hits are flattened in); ``truncated`` says some were left out, ``event_count`` is the total.
    """

    rule: CorrelationRuleInfo
    group: dict[str, Any]
    window_start: datetime
    window_end: datetime
    value: float | int
    events: tuple[Contribution, ...]
    event_count: int
    truncated: bool

    @property
    def rule_ref(self) -> RuleRef:
        """The hit as a rule match, for feeding into correlations that reference this one."""
        return self.rule.ref
