"""Window entries and the aggregate functions of the correlation types."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vigil.detect.correlate.compiler import CompiledCorrelation, CorrelationKind
from vigil.detect.correlate.model import Contribution, CorrelationHit


@dataclass(slots=True)
class Entry:
    """One observation held in a group's window state.

    ``ts`` is event time in integer microseconds since the epoch (exact arithmetic at window
    edges). ``key`` is the distinct-value key (value_count) or the numeric value (value_sum,
    value_avg, value_percentile, value_median); ``None`` for the other types.
    """

    ts: int
    rule_index: int
    key: Any
    payload: Contribution | CorrelationHit

    @property
    def weight(self) -> int:
        """How many events this entry stands for (chained hits carry their events)."""
        payload = self.payload
        return payload.event_count if isinstance(payload, CorrelationHit) else 1


def hashable(value: Any) -> Any:
    """A hashable stand-in for a field value (lists become tuples, dicts sorted tuples)."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), hashable(v)) for k, v in value.items()))
    if isinstance(value, set | frozenset):
        return tuple(sorted(repr(hashable(v)) for v in value))
    return value


def numeric(value: Any) -> float | None:
    """The value as a finite number, or None (bools, non-numeric strings, missing)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) by linear interpolation between closest ranks.

    Same definition as numpy's default (``method="linear"``): rank ``p/100 * (n - 1)``.
    """
    n = len(sorted_values)
    rank = p / 100.0 * (n - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    low_value = sorted_values[low]
    return low_value + (sorted_values[high] - low_value) * (rank - low)


def ordered_prefix(entries: Sequence[Entry]) -> int:
    """How many of the correlated rules, in their listed order, occur one after the other.

    Greedy scan over the entries in time order (ties in arrival order): the longest prefix
    ``rules[0], rules[1], ...`` found as a subsequence.
    """
    wanted = 0
    for entry in entries:
        if entry.rule_index == wanted:
            wanted += 1
    return wanted


def aggregate(corr: CompiledCorrelation, entries: Sequence[Entry]) -> float | int:
    """The correlation's aggregated value over a non-empty window."""
    kind = corr.kind
    if kind is CorrelationKind.EVENT_COUNT:
        # A chained correlation hit is one occurrence of the referenced rule.
        return len(entries)
    if kind is CorrelationKind.VALUE_COUNT:
        return len({entry.key for entry in entries})
    if kind is CorrelationKind.TEMPORAL:
        return len({entry.rule_index for entry in entries})
    if kind is CorrelationKind.TEMPORAL_ORDERED:
        return ordered_prefix(entries)
    values = [float(entry.key) for entry in entries]
    if kind is CorrelationKind.VALUE_SUM:
        total = math.fsum(values)
        return int(total) if total.is_integer() else total
    if kind is CorrelationKind.VALUE_AVG:
        return math.fsum(values) / len(values)
    assert corr.percentile is not None
    return percentile(sorted(values), corr.percentile)
