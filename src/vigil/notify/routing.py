"""Which channels an event goes to: pure decisions over routing rules (no I/O).

A rule matches an event when every condition it sets holds (an unset condition matches all):

* ``min_severity``: the event's severity is at least this (info < low < medium < high < critical);
* ``tags``: the event carries at least one of them (case-insensitive), taken from the event's
  ``details.tags`` list (alerts put their ATT&CK and rule tags there);
* ``event_types``: the event's type is one of them.

Rules only ever see their own tenant's events (the dispatcher groups by tenant). An event goes to
the union of the channels of every matching rule, once per channel. Escalation events that name
channels (``details.channels``) go to exactly those channels and ignore the rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vigil.events.envelope import EventType, SecurityEvent, Severity
from vigil.notify.models import DeliveryKind


@dataclass(frozen=True, slots=True)
class RouteRule:
    id: str
    channel_ids: tuple[str, ...]
    min_severity: Severity | None = None
    tags: frozenset[str] = frozenset()  # lower-cased
    event_types: frozenset[str] = frozenset()

    def matches(self, event: SecurityEvent, tags: frozenset[str]) -> bool:
        if self.min_severity is not None and event.severity.rank < self.min_severity.rank:
            return False
        if self.event_types and event.event_type not in self.event_types:
            return False
        return not self.tags or not self.tags.isdisjoint(tags)


@dataclass(frozen=True, slots=True)
class Target:
    channel_id: str
    kind: DeliveryKind
    route_ids: tuple[str, ...] = field(default=())


def event_tags(event: SecurityEvent) -> frozenset[str]:
    """The event's tags (``details.tags``: strings), lower-cased; anything else is ignored."""
    raw = event.details.get("tags")
    if not isinstance(raw, list):
        return frozenset()
    return frozenset(t.strip().lower() for t in raw if isinstance(t, str) and t.strip())


def escalation_channels(event: SecurityEvent) -> list[str] | None:
    """The channel ids an escalation event names, or None when routing rules decide."""
    if event.event_type != EventType.ESCALATION.value:
        return None
    raw: Any = event.details.get("channels")
    if not isinstance(raw, list):
        return None
    out: list[str] = []
    for item in raw:
        if isinstance(item, str) and item not in out:
            out.append(item)
    return out


def select_targets(
    event: SecurityEvent,
    rules: Iterable[RouteRule],
    *,
    usable_channels: Mapping[str, Any],
) -> list[Target]:
    """Channels ``event`` goes to, in a stable order, each once.

    ``usable_channels``: the tenant's enabled channels by id; anything else named by a rule or an
    escalation is skipped (a disabled or deleted channel receives nothing).
    """
    named = escalation_channels(event)
    if named is not None:
        return [Target(cid, DeliveryKind.ESCALATION) for cid in named if cid in usable_channels]
    tags = event_tags(event)
    by_channel: dict[str, list[str]] = {}
    for rule in rules:
        if not rule.matches(event, tags):
            continue
        for cid in rule.channel_ids:
            if cid in usable_channels:
                by_channel.setdefault(cid, []).append(rule.id)
    return [Target(cid, DeliveryKind.ROUTE, tuple(rids)) for cid, rids in by_channel.items()]
