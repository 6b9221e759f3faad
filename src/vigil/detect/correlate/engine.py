"""Streaming evaluation of compiled Sigma correlation rules in event time.

Semantics (one correlation rule, one group-by key; ``T`` = timespan, ``L`` = allowed lateness):

* **Grouping.** The key is the values of the ``group-by`` fields, each resolved per referenced
  rule through ``aliases`` (a group-by name that is an alias without a mapping for that rule
  is looked up as a field of that name). An event lacking a group-by field (``None``/missing)
  is not counted (like ``stats ... by`` in a SIEM). No ``group-by`` means one global group.
  Events without a value for ``field`` are not counted by value_count (every ``field`` must be
  present); value_sum/avg/percentile/median count only events whose field is a number (or a
  numeric string). A chained correlation hit is seen by the outer correlation as an event at
  the hit's ``window_end`` whose fields are the hit's group-by values.
* **Window membership.** Events belong to one window when their timestamps differ by at most
  ``T`` (inclusive: exactly ``T`` apart is in, one microsecond more is out).
* **Threshold crossing** (``crossing``: event_count, value_count, temporal, temporal_ordered
  and value_sum with only ``gt``/``gte``): windows slide. Every window ``[t - T, t]`` that ends
  at an event ``t`` is evaluated when it changes; the first one satisfying the condition
  fires immediately from :meth:`CorrelationEngine.observe`. **Fire once, then reset:** the
  events of the group up to ``t`` are consumed, so each event contributes to at most one hit
  of a correlation per group and the next hit needs the threshold reached again by events
  at or after ``t`` (events arriving later with a timestamp before ``t`` are dropped as
  late). 25 events in one minute against ``gte: 10`` give 2 hits, not 16.
* **Window close** (every other case: ``lt``/``lte``/``eq``/``neq`` or ranges on any type, and
  all of value_avg/value_percentile/value_median, whose value can move both ways): windows
  are anchored tumbling windows ``[first, first + T]`` starting at the earliest held event of
  the group; the next window starts at the first event after it. A window is evaluated once,
  when it closes: when an event of the group newer than ``first + T + L`` arrives, when the
  group expires or is evicted, or at :meth:`CorrelationEngine.flush`. So "fewer than N"
  fires at close and only for groups that had at least one event (absence of any event
  cannot be detected).
* **Out-of-order input and allowed lateness.** Time is event time only. Each group keeps its
  events sorted; state older than the group's newest event minus ``T + L`` is discarded.
  A late event is inserted at its place and counted against every held window containing
  it (for crossing rules the windows ending at later events within ``T`` are re-evaluated).
  It is dropped (``stats.late_events_dropped``) only if it falls before a window of its
  group that already fired (crossing) or closed (window close). Results are therefore exact
  when no event arrives more than ``L`` behind the newest event of its group.
* **Bounded memory.** Groups are kept in least-recently-updated order. After each event the
  least recently updated groups whose newest event is older than the rule's newest event
  minus ``T + L`` expire (window-close rules evaluate them first), and a rule holds at most
  ``max_groups_per_rule`` groups (the least recently updated is evicted, evaluated first for
  window-close rules; ``stats.evicted_groups``). A group holds at most
  ``max_events_per_group`` events (the oldest are dropped; ``stats.events_dropped``).
* **Output.** Hits of a correlation referenced by other correlations are fed to those; they
  are returned to the caller only if a referencing correlation has ``generate: true``.
* **Snapshots.** :meth:`CorrelationEngine.snapshot` returns the held state as plain data
  (:mod:`vigil.detect.correlate.state`); :meth:`CorrelationEngine.restore` loads it into a
  fresh engine, which then behaves exactly as the engine that took it (same hits, same
  stats). State is keyed by :func:`definition_key`, so an engine built from reloaded rules
  takes over the state of every correlation whose definition did not change and starts the
  others empty. The engine does no I/O; storing snapshots is the caller's business.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort_right
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.detect.correlate.aggregate import Entry, aggregate, hashable, numeric
from vigil.detect.correlate.compiler import (
    CompiledCorrelation,
    CorrelationKind,
    definition_key,
    referenced_base_rules,
    rule_keys,
    suppressed_correlation_refs,
)
from vigil.detect.correlate.errors import CorrelationError
from vigil.detect.correlate.model import Contribution, CorrelationHit, RuleRef
from vigil.detect.correlate.state import SNAPSHOT_VERSION, StateDecoder, StateEncoder
from vigil.events.model import EventRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_SECOND_US = 1_000_000

DEFAULT_MAX_GROUPS_PER_RULE = 100_000
DEFAULT_MAX_EVENTS_PER_GROUP = 10_000
DEFAULT_MAX_HIT_EVENTS = 100
DEFAULT_ALLOWED_LATENESS = timedelta(minutes=10)


@dataclass(slots=True)
class EngineStats:
    """Counters of what the engine did not count, or dropped, and why."""

    observed: int = 0
    untimed_events: int = 0
    ungrouped_events: int = 0
    late_events_dropped: int = 0
    events_dropped: int = 0
    expired_groups: int = 0
    evicted_groups: int = 0
    hits: int = 0


def to_micros(moment: datetime) -> int:
    """Event time as integer microseconds since the epoch (naive datetimes are UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _US


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class _Group:
    """The held state of one group-by key of one correlation."""

    __slots__ = (
        "entries",
        "floor",
        "head_counts",
        "head_lo",
        "head_sum",
        "max_ts",
        "tss",
        "values",
    )

    def __init__(self, values: tuple[Any, ...]) -> None:
        self.values = values
        self.tss: list[int] = []
        self.entries: list[Entry] = []
        self.max_ts = -(2**63)
        #: Events before this time are late (a window up to it fired or closed).
        self.floor: int | None = None
        # Incremental aggregate of the window ending at the newest entry (crossing rules):
        # entries[head_lo:]; head_lo < 0 means "rebuild before use".
        self.head_lo = -1
        self.head_counts: dict[Any, int] = {}
        self.head_sum = 0.0

    def delete_front(self, count: int) -> None:
        if count <= 0:
            return
        del self.tss[:count]
        del self.entries[:count]
        self.head_lo = self.head_lo - count if self.head_lo >= count else -1


class _RuleState:
    __slots__ = ("corr", "groups", "span", "watermark")

    def __init__(self, corr: CompiledCorrelation) -> None:
        self.corr = corr
        self.span = round(corr.timespan * _SECOND_US)
        self.groups: OrderedDict[tuple[Any, ...], _Group] = OrderedDict()
        self.watermark = -(2**63)


class CorrelationEngine:
    """Evaluates compiled correlations over the matches of their referenced rules.

    Feed every (rule, event) match with :meth:`observe` and call :meth:`flush` at the end of
    the input. See the module documentation for the exact semantics.
    """

    def __init__(
        self,
        compiled: Sequence[CompiledCorrelation],
        *,
        max_groups_per_rule: int = DEFAULT_MAX_GROUPS_PER_RULE,
        max_events_per_group: int = DEFAULT_MAX_EVENTS_PER_GROUP,
        max_hit_events: int = DEFAULT_MAX_HIT_EVENTS,
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
    ) -> None:
        if max_groups_per_rule < 1 or max_events_per_group < 1 or max_hit_events < 0:
            raise ValueError("engine limits must be positive")
        if allowed_lateness < timedelta(0):
            raise ValueError("allowed_lateness must not be negative")
        self._compiled = tuple(compiled)
        self._states = [_RuleState(corr) for corr in self._compiled]
        self._max_groups = max_groups_per_rule
        self._max_events = max_events_per_group
        self._max_hit_events = max_hit_events
        self._lateness = to_micros(_EPOCH + allowed_lateness)
        self._silent = suppressed_correlation_refs(self._compiled)
        self.stats = EngineStats()
        # rule key (lowercase id or name) -> [(correlation index, referenced rule index)]
        self._index: dict[str, list[tuple[int, int]]] = {}
        seen_corr: dict[str, int] = {}
        for ci, corr in enumerate(self._compiled):
            for key in rule_keys(corr.info.ref):
                if key in seen_corr:
                    raise CorrelationError(corr.label, f"'{key}' identifies two correlations")
                seen_corr[key] = ci
            for ri, ref in enumerate(corr.rules):
                for key in rule_keys(ref):
                    self._index.setdefault(key, []).append((ci, ri))
        for corr in self._compiled:
            for ref, is_corr in zip(corr.rules, corr.rule_is_correlation, strict=True):
                if is_corr and not any(k in seen_corr for k in rule_keys(ref)):
                    raise CorrelationError(
                        corr.label, f"referenced correlation {ref.label} was not compiled"
                    )

    # -- public API -------------------------------------------------------------------------

    @property
    def compiled(self) -> tuple[CompiledCorrelation, ...]:
        return self._compiled

    def referenced_rule_keys(self) -> frozenset[str]:
        """Ids (lowercase) and names of all rules whose matches the engine wants."""
        return frozenset(self._index)

    def referenced_base_rules(self) -> dict[RuleRef, bool]:
        """Referenced base rules -> whether a referencing correlation has ``generate: true``."""
        return referenced_base_rules(self._compiled)

    def wants(self, rule: RuleRef) -> bool:
        return bool(self._targets(rule))

    def observe(self, rule: RuleRef, event: EventRecord) -> list[CorrelationHit]:
        """Record that ``event`` matched ``rule``; returns the hits this completes."""
        targets = self._targets(rule)
        if not targets:
            return []
        self.stats.observed += 1
        if event.timestamp is None:
            self.stats.untimed_events += 1
            return []
        ts = to_micros(event.timestamp)
        out: list[CorrelationHit] = []
        payload = Contribution(rule, event)
        for ci, ri in targets:
            self._emit(ci, self._feed(ci, ri, ts, payload, event.fields), out)
        return out

    def flush(self) -> list[CorrelationHit]:
        """End of input: evaluate every open window-close window and clear all state."""
        out: list[CorrelationHit] = []
        for ci, state in enumerate(self._states):
            hits: list[CorrelationHit] = []
            while state.groups:
                _, group = state.groups.popitem(last=False)
                hits.extend(self._close(state, group, until=None))
            hits.sort(key=lambda hit: hit.window_end)
            self._emit(ci, hits, out)
            state.watermark = -(2**63)
        return out

    def snapshot(self) -> dict[str, Any]:
        """The held state as plain data (JSON/msgpack-encodable; see the module docs)."""
        encoder = StateEncoder()
        correlations: dict[str, Any] = {}
        for state in self._states:
            correlations[definition_key(state.corr)] = {
                "watermark": state.watermark,
                "groups": [
                    encoder.group(
                        values=g.values,
                        max_ts=g.max_ts,
                        floor=g.floor,
                        head_lo=g.head_lo,
                        head_sum=g.head_sum,
                        head_counts=g.head_counts,
                        entries=g.entries,
                    )
                    for g in state.groups.values()  # least recently updated first
                ],
            }
        return {
            "version": SNAPSHOT_VERSION,
            "correlations": correlations,
            "stats": asdict(self.stats),
            **encoder.tables(),
        }

    def restore(self, data: Mapping[str, Any]) -> int:
        """Load a :meth:`snapshot` into this engine; returns how many correlations it covered.

        Each correlation whose :func:`definition_key` is in the snapshot gets that state (its
        current state is replaced); the others keep theirs, so snapshots of disjoint sets of
        correlations can be restored one after the other. Stats are added.

        Raises:
            ValueError: the data is not a snapshot of this version.
        """
        if not isinstance(data, Mapping) or data.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a correlation engine snapshot of a supported version")
        saved_states: Mapping[str, Any] = data["correlations"]
        decoder = StateDecoder(data)
        restored = 0
        for state in self._states:
            saved = saved_states.get(definition_key(state.corr))
            if saved is None:
                continue
            restored += 1
            state.watermark = int(saved["watermark"])
            state.groups = OrderedDict()
            for values, max_ts, floor, head_lo, head_sum, counts, entries in saved["groups"]:
                group = _Group(tuple(hashable(v) for v in values))
                group.entries = decoder.entries(entries)
                group.tss = [entry.ts for entry in group.entries]
                group.max_ts = max_ts
                group.floor = floor
                group.head_lo = head_lo
                group.head_sum = head_sum
                group.head_counts = {hashable(key): count for key, count in counts}
                state.groups[group.values] = group
        if restored:
            for spec in fields(EngineStats):
                saved_count = int(data.get("stats", {}).get(spec.name, 0))
                setattr(self.stats, spec.name, getattr(self.stats, spec.name) + saved_count)
        return restored

    def state_size(self) -> int:
        """Held groups plus held events over all correlations (for memory checks)."""
        return sum(
            len(state.groups) + sum(len(g.entries) for g in state.groups.values())
            for state in self._states
        )

    # -- feeding ----------------------------------------------------------------------------

    def _targets(self, rule: RuleRef) -> list[tuple[int, int]]:
        if rule.id:
            found = self._index.get(rule.id.lower())
            if found is not None:
                return found
        if rule.name:
            return self._index.get(rule.name, [])
        return []

    def _emit(self, ci: int, hits: list[CorrelationHit], out: list[CorrelationHit]) -> None:
        """Return hits to the caller unless silent, and feed them to chained correlations."""
        corr = self._compiled[ci]
        ref = corr.info.ref
        for hit in hits:
            self.stats.hits += 1
            if ref not in self._silent:
                out.append(hit)
            ts = to_micros(hit.window_end)
            for cj, rj in self._targets(ref):
                self._emit(cj, self._feed(cj, rj, ts, hit, hit.group), out)

    def _feed(
        self,
        ci: int,
        ri: int,
        ts: int,
        payload: Contribution | CorrelationHit,
        fields: dict[str, Any],
    ) -> list[CorrelationHit]:
        state = self._states[ci]
        corr = state.corr
        key_values: list[Any] = []
        for name in corr.group_fields[ri]:
            value = fields.get(name)
            if value is None:
                self.stats.ungrouped_events += 1
                return []
            key_values.append(hashable(value))
        key = tuple(key_values)
        entry_key = self._entry_key(corr, fields)
        if entry_key is _SKIP:
            self.stats.ungrouped_events += 1
            return []

        hits: list[CorrelationHit] = []
        group = state.groups.get(key)
        if group is None:
            group = _Group(key)
            state.groups[key] = group
        else:
            state.groups.move_to_end(key)
        if group.floor is not None and (
            ts < group.floor or (ts == group.floor and not corr.crossing)
        ):
            self.stats.late_events_dropped += 1
        else:
            entry = Entry(ts, ri, entry_key, payload)
            if corr.crossing:
                hits.extend(self._add_crossing(state, group, entry))
            else:
                hits.extend(self._add_closing(state, group, entry))
        if ts > state.watermark:
            state.watermark = ts
        hits.extend(self._sweep(state, keep=group))
        return hits

    def _entry_key(self, corr: CompiledCorrelation, fields: dict[str, Any]) -> Any:
        kind = corr.kind
        if kind is CorrelationKind.VALUE_COUNT:
            values = [fields.get(name) for name in corr.value_fields]
            if any(value is None for value in values):
                return _SKIP
            return hashable(values[0]) if len(values) == 1 else hashable(values)
        if corr.value_fields:
            number = numeric(fields.get(corr.value_fields[0]))
            return _SKIP if number is None else number
        return None

    def _sweep(self, state: _RuleState, keep: _Group) -> list[CorrelationHit]:
        """Expire idle groups from the least recently updated end and enforce the cap.

        ``keep`` (the group just updated) is never expired by the sweep.
        """
        hits: list[CorrelationHit] = []
        horizon = state.watermark - state.span - self._lateness
        groups = state.groups
        while groups:
            group = next(iter(groups.values()))
            if group is keep or group.max_ts >= horizon:
                break
            groups.popitem(last=False)
            self.stats.expired_groups += 1
            if not state.corr.crossing:
                hits.extend(self._close(state, group, until=None))
        while len(groups) > self._max_groups:
            _, group = groups.popitem(last=False)
            self.stats.evicted_groups += 1
            if not state.corr.crossing:
                hits.extend(self._close(state, group, until=None))
        return hits

    def _insert(self, group: _Group, entry: Entry) -> int:
        """Insert in time order (ties after existing entries); returns the index."""
        ts = entry.ts
        if not group.tss or ts >= group.tss[-1]:
            group.tss.append(ts)
            group.entries.append(entry)
            index = len(group.tss) - 1
        else:
            index = bisect_right(group.tss, ts)
            insort_right(group.tss, ts)
            group.entries.insert(index, entry)
        if ts > group.max_ts:
            group.max_ts = ts
        overflow = len(group.tss) - self._max_events
        if overflow > 0:
            self.stats.events_dropped += overflow
            group.delete_front(overflow)
            index -= overflow
        return index

    # -- threshold crossing -----------------------------------------------------------------

    def _add_crossing(self, state: _RuleState, group: _Group, entry: Entry) -> list[CorrelationHit]:
        corr = state.corr
        span = state.span
        in_order = not group.tss or entry.ts >= group.tss[-1]
        index = self._insert(group, entry)
        if index < 0:  # dropped at once by the per-group cap
            return []
        tss = group.tss
        if in_order:
            value = self._head_value(state, group)
            candidates: range = range(len(tss) - 1, len(tss))
        else:
            group.head_lo = -1
            last = bisect_right(tss, entry.ts + span)
            candidates = range(index, last)
            value = None
        for j in candidates:
            lo = bisect_left(tss, tss[j] - span)
            if value is None:
                value = aggregate(corr, group.entries[lo : j + 1])
            if corr.condition.test(value):
                hit = self._hit(state, group, group.entries[lo : j + 1], value, tss[lo], tss[j])
                group.floor = tss[j]
                group.delete_front(j + 1)
                group.head_lo = -1
                return [hit]
            value = None
        # Discard what no future window can use.
        horizon = group.max_ts - span - self._lateness
        if tss and tss[0] < horizon:
            group.delete_front(bisect_left(tss, horizon))
        return []

    def _head_value(self, state: _RuleState, group: _Group) -> float | int:
        """Aggregate of the window ending at the newest entry, maintained incrementally."""
        corr = state.corr
        tss = group.tss
        start = tss[-1] - state.span
        if corr.kind is CorrelationKind.EVENT_COUNT:
            return len(tss) - bisect_left(tss, start)
        if corr.kind is CorrelationKind.TEMPORAL_ORDERED:
            return aggregate(corr, group.entries[bisect_left(tss, start) :])
        entries = group.entries
        by_rule = corr.kind is CorrelationKind.TEMPORAL
        summing = corr.kind is CorrelationKind.VALUE_SUM
        counts = group.head_counts
        if group.head_lo < 0:
            group.head_lo = bisect_left(tss, start)
            counts.clear()
            window = entries[group.head_lo :]
            if summing:
                group.head_sum = float(sum(e.key for e in window))
            else:
                for e in window:
                    k = e.rule_index if by_rule else e.key
                    counts[k] = counts.get(k, 0) + 1
        else:
            newest = entries[-1]
            if summing:
                group.head_sum += newest.key
            else:
                k = newest.rule_index if by_rule else newest.key
                counts[k] = counts.get(k, 0) + 1
            while tss[group.head_lo] < start:
                old = entries[group.head_lo]
                group.head_lo += 1
                if summing:
                    group.head_sum -= old.key
                else:
                    k = old.rule_index if by_rule else old.key
                    left = counts[k] - 1
                    if left:
                        counts[k] = left
                    else:
                        del counts[k]
        if summing:
            total = group.head_sum
            return int(total) if total.is_integer() else total
        return len(counts)

    # -- window close -----------------------------------------------------------------------

    def _add_closing(self, state: _RuleState, group: _Group, entry: Entry) -> list[CorrelationHit]:
        self._insert(group, entry)
        return self._close(state, group, until=group.max_ts - self._lateness)

    def _close(self, state: _RuleState, group: _Group, until: int | None) -> list[CorrelationHit]:
        """Evaluate and drop the windows of ``group`` that end before ``until`` (all: None)."""
        hits: list[CorrelationHit] = []
        span = state.span
        tss = group.tss
        while tss and (until is None or tss[0] + span < until):
            start = tss[0]
            end = start + span
            hi = bisect_right(tss, end)
            window = group.entries[:hi]
            value = aggregate(state.corr, window)
            if state.corr.condition.test(value):
                hits.append(self._hit(state, group, window, value, start, end))
            group.floor = end
            group.delete_front(hi)
        return hits

    # -- hits -------------------------------------------------------------------------------

    def _hit(
        self,
        state: _RuleState,
        group: _Group,
        window: list[Entry],
        value: float | int,
        start: int,
        end: int,
    ) -> CorrelationHit:
        contributions: list[Contribution] = []
        total = 0
        cap = self._max_hit_events
        for entry in window:
            payload = entry.payload
            if isinstance(payload, CorrelationHit):
                total += payload.event_count
                room = cap - len(contributions)
                if room > 0:
                    contributions.extend(payload.events[:room])
            else:
                total += 1
                if len(contributions) < cap:
                    contributions.append(payload)
        corr = state.corr
        return CorrelationHit(
            rule=corr.info,
            group=dict(zip(corr.group_by, group.values, strict=True)),
            window_start=from_micros(start),
            window_end=from_micros(end),
            value=value,
            events=tuple(contributions),
            event_count=total,
            truncated=len(contributions) < total,
        )


class _Skip:
    """Marker: the event has no usable value for the correlation's field."""


_SKIP: Any = _Skip()
