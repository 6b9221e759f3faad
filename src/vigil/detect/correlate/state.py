"""The engine's held state as plain data (dicts, lists, str, int, float, bool, None).

:meth:`vigil.detect.correlate.CorrelationEngine.snapshot` and ``restore`` use these codecs; the
result can be written with any JSON or msgpack encoder (never pickle: a snapshot is data read
back from storage, not code). The layout, version :data:`SNAPSHOT_VERSION`::

    {"version": 1,
     "correlations": {<definition key>: {"watermark": int, "groups": [group, ...]}},
     "stats": {counter: int},
     "refs": [[id, name, title]],                       # rules that contributed
     "infos": [[id, name, title, level, [tags], type]],  # correlations of chained hits
     "events": [[fields, source, record id, time, logsource]],
     "contributions": [[ref index, event index]],
     "hits": [{"i": info, "g": group, "ws": us, "we": us, "v": value,
               "e": [contribution], "n": event count, "x": truncated}]}

    group = [values, max_ts, floor, head_lo, head_sum, [[head key, count]],
             [[ts, rule index, key, payload], ...]]

A payload ``p >= 0`` is contribution ``p``; ``p < 0`` is hit ``-p - 1``. An event time is
integer microseconds when it is in UTC (the common case, and cheap), else its ISO form, which
keeps the offset (or its absence). Events, rule refs and
contributions that several groups (or correlations) hold are written once. Group values and
entry keys are tuples in memory (see :func:`vigil.detect.correlate.aggregate.hashable`) and lists
in the data; :func:`hashable` turns them back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.detect.correlate.aggregate import Entry, hashable
from vigil.detect.correlate.model import (
    Contribution,
    CorrelationHit,
    CorrelationRuleInfo,
    RuleRef,
)
from vigil.events.model import EventRecord

SNAPSHOT_VERSION = 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _encode_time(moment: datetime | None) -> int | str | None:
    if moment is None:
        return None
    if moment.tzinfo is UTC:
        return (moment - _EPOCH) // _US
    return moment.isoformat()


def _decode_time(value: int | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int):
        return _EPOCH + timedelta(microseconds=value)
    return datetime.fromisoformat(value)


def _plain(value: Any) -> Any:
    """Tuples (group values, distinct-value keys) as lists, for JSON-like encoders."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class StateEncoder:
    """Collects the shared tables while groups are encoded (one encoder per snapshot)."""

    def __init__(self) -> None:
        self.refs: list[list[Any]] = []
        self.infos: list[list[Any]] = []
        self.events: list[list[Any]] = []
        self.contributions: list[list[int]] = []
        self.hits: list[dict[str, Any]] = []
        self._ref_ix: dict[RuleRef, int] = {}
        self._info_ix: dict[CorrelationRuleInfo, int] = {}
        # By identity: the objects are alive in the engine for the whole encoding.
        self._event_ix: dict[int, int] = {}
        self._contribution_ix: dict[int, int] = {}
        self._hit_ix: dict[int, int] = {}

    def tables(self) -> dict[str, Any]:
        return {
            "refs": self.refs,
            "infos": self.infos,
            "events": self.events,
            "contributions": self.contributions,
            "hits": self.hits,
        }

    def group(
        self,
        *,
        values: tuple[Any, ...],
        max_ts: int,
        floor: int | None,
        head_lo: int,
        head_sum: float,
        head_counts: Mapping[Any, int],
        entries: Iterable[Entry],
    ) -> list[Any]:
        return [
            _plain(values),
            max_ts,
            floor,
            head_lo,
            head_sum,
            [[_plain(key), count] for key, count in head_counts.items()],
            [[e.ts, e.rule_index, _plain(e.key), self._payload(e.payload)] for e in entries],
        ]

    def _payload(self, payload: Contribution | CorrelationHit) -> int:
        if isinstance(payload, CorrelationHit):
            return -self._hit(payload) - 1
        return self._contribution(payload)

    def _ref(self, ref: RuleRef) -> int:
        index = self._ref_ix.get(ref)
        if index is None:
            index = self._ref_ix[ref] = len(self.refs)
            self.refs.append([ref.id, ref.name, ref.title])
        return index

    def _event(self, event: EventRecord) -> int:
        index = self._event_ix.get(id(event))
        if index is None:
            index = self._event_ix[id(event)] = len(self.events)
            self.events.append(
                [
                    event.fields,
                    event.source_file,
                    event.record_id,
                    _encode_time(event.timestamp),
                    event.logsource,
                ]
            )
        return index

    def _contribution(self, contribution: Contribution) -> int:
        index = self._contribution_ix.get(id(contribution))
        if index is None:
            index = self._contribution_ix[id(contribution)] = len(self.contributions)
            self.contributions.append(
                [self._ref(contribution.rule), self._event(contribution.event)]
            )
        return index

    def _info(self, info: CorrelationRuleInfo) -> int:
        index = self._info_ix.get(info)
        if index is None:
            index = self._info_ix[info] = len(self.infos)
            self.infos.append(
                [info.id, info.name, info.title, info.level, list(info.tags), info.type]
            )
        return index

    def _hit(self, hit: CorrelationHit) -> int:
        index = self._hit_ix.get(id(hit))
        if index is None:
            encoded = {
                "i": self._info(hit.rule),
                "g": {name: _plain(value) for name, value in hit.group.items()},
                "ws": hit.window_start.isoformat(),
                "we": hit.window_end.isoformat(),
                "v": hit.value,
                "e": [self._contribution(c) for c in hit.events],
                "n": hit.event_count,
                "x": hit.truncated,
            }
            index = self._hit_ix[id(hit)] = len(self.hits)
            self.hits.append(encoded)
        return index


class StateDecoder:
    """Rebuilds the shared objects of one snapshot (each decoded once, then shared)."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        refs = [RuleRef(i, n, t) for i, n, t in data.get("refs", ())]
        events = [
            EventRecord(fields, source, record_id, _decode_time(moment), logsource)
            for fields, source, record_id, moment, logsource in data.get("events", ())
        ]
        self.contributions = [
            Contribution(refs[r], events[e]) for r, e in data.get("contributions", ())
        ]
        infos = [
            CorrelationRuleInfo(i, n, title, level, tuple(tags), kind)
            for i, n, title, level, tags, kind in data.get("infos", ())
        ]
        self.hits = [
            CorrelationHit(
                rule=infos[h["i"]],
                group={name: hashable(value) for name, value in h["g"].items()},
                window_start=datetime.fromisoformat(h["ws"]),
                window_end=datetime.fromisoformat(h["we"]),
                value=h["v"],
                events=tuple(self.contributions[c] for c in h["e"]),
                event_count=h["n"],
                truncated=h["x"],
            )
            for h in data.get("hits", ())
        ]

    def entries(self, encoded: Iterable[list[Any]]) -> list[Entry]:
        hits = self.hits
        contributions = self.contributions
        return [
            Entry(
                ts,
                rule_index,
                hashable(key) if type(key) is list else key,
                hits[-payload - 1] if payload < 0 else contributions[payload],
            )
            for ts, rule_index, key, payload in encoded
        ]


__all__ = ["SNAPSHOT_VERSION", "StateDecoder", "StateEncoder", "hashable"]
