"""Snapshot and restore: an engine restored from a snapshot behaves exactly like the original.

The property test runs random streams (out of order, missing and non-numeric values, small
caps so groups are evicted and events dropped) through every correlation type at once, and
compares an uninterrupted engine with one that is snapshotted, encoded as JSON, decoded and
restored into a new engine at random points.
"""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from tests.detect.correlate.helpers import T0, base_rule, compiled_of, ev, load, ref
from vigil.detect.correlate import CorrelationEngine, RuleRef, definition_key
from vigil.events.model import EventRecord

BASES = [base_rule("a"), base_rule("b"), base_rule("c")]


def correlations(t: int, span: int) -> list[str]:
    """One correlation of every type (threshold ``t``, timespan ``span`` seconds), crossing
    and window-close variants, and a chain (``outer`` counts hits of ``inner``)."""
    by = "group-by: [User]"
    docs = {
        "count_gte": f"type: event_count, rules: [a], {by}, condition: {{gte: {t}}}",
        "count_lt": f"type: event_count, rules: [a, b], {by}, condition: {{lt: {t}}}",
        "distinct": f"type: value_count, rules: [a], {by}, condition: {{gte: {t}, field: Host}}",
        "distinct_eq": f"type: value_count, rules: [b], condition: {{eq: {t}, field: Host}}",
        "temporal": f"type: temporal, rules: [a, b, c], {by}, condition: {{gte: {min(t, 3)}}}",
        "ordered": f"type: temporal_ordered, rules: [a, b, c], {by}",
        "sum_gte": f"type: value_sum, rules: [a, c], {by}, condition: {{gte: {t * 7}, field: N}}",
        "sum_lte": f"type: value_sum, rules: [b], {by}, condition: {{lte: {t * 7}, field: N}}",
        "avg": f"type: value_avg, rules: [a], {by}, condition: {{gt: {t}, field: N}}",
        "p90": f"type: value_percentile, rules: [c], {by}, "
        f"condition: {{gte: {t}, field: N, percentile: 90}}",
        "median": f"type: value_median, rules: [a, b], {by}, condition: {{lt: {t * 3}, field: N}}",
        "inner": f"type: event_count, rules: [b], {by}, condition: {{gte: {t}}}",
        "outer": f"type: event_count, rules: [inner], {by}, condition: {{gte: 2}}, generate: true",
    }
    return [
        f"title: {name}\nname: {name}\ncorrelation: {{{body}, timespan: {span}s}}"
        for name, body in docs.items()
    ]


values = st.one_of(
    st.none(),
    st.integers(-5, 20),
    st.floats(-5, 20, allow_nan=False, width=32),
    st.sampled_from(["3", " 4.5 ", "x", ""]),
)
events = st.lists(
    st.tuples(
        st.integers(0, 2),  # rule a, b or c
        st.integers(-30, 400),  # event time in seconds after T0 (arrival is out of order)
        st.sampled_from(["u1", "u2", None]),
        st.sampled_from(["h1", "h2", "h3", "h4"]),
        values,
    ),
    max_size=120,
)


def make_engine(compiled: list[Any], limits: dict[str, Any]) -> CorrelationEngine:
    return CorrelationEngine(compiled, **limits)


def stream_of(raw: list[tuple[Any, ...]], refs: list[RuleRef]) -> list[tuple[RuleRef, EventRecord]]:
    out = []
    for i, (rule, seconds, user, host, number) in enumerate(raw):
        fields: dict[str, Any] = {"Host": host, "N": number}
        if user is not None:
            fields["User"] = user
        out.append((refs[rule], ev(seconds, i, **fields)))
    return out


def round_trip(engine: CorrelationEngine, compiled: list[Any], limits: dict[str, Any]) -> Any:
    data = orjson.loads(orjson.dumps(engine.snapshot()))  # stored as bytes, read back
    fresh = make_engine(compiled, limits)
    assert fresh.restore(data) == len(compiled)
    return fresh


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
@given(
    raw=events,
    threshold=st.integers(1, 4),
    span=st.sampled_from([30, 60, 120]),
    lateness=st.sampled_from([0, 20, 90]),
    max_groups=st.integers(1, 4),
    max_events=st.integers(2, 12),
    cut=st.lists(st.booleans(), min_size=1, max_size=16),
)
def test_restored_engine_gives_the_same_hits_as_an_uninterrupted_run(
    raw: list[tuple[Any, ...]],
    threshold: int,
    span: int,
    lateness: int,
    max_groups: int,
    max_events: int,
    cut: list[bool],
) -> None:
    rules = load(*BASES, *correlations(threshold, span))
    compiled = compiled_of(rules)
    limits = {
        "allowed_lateness": timedelta(seconds=lateness),
        "max_groups_per_rule": max_groups,
        "max_events_per_group": max_events,
        "max_hit_events": 5,
    }
    stream = stream_of(raw, [ref(rules, name) for name in "abc"])

    reference = make_engine(compiled, limits)
    engine = make_engine(compiled, limits)
    hits = 0
    for i, (rule, record) in enumerate(stream):
        if cut[i % len(cut)]:
            engine = round_trip(engine, compiled, limits)
            # The restored state is the state of the engine that never stopped.
            assert engine.snapshot() == reference.snapshot()
        expected = reference.observe(rule, record)
        assert engine.observe(rule, record) == expected
        hits += len(expected)
    engine = round_trip(engine, compiled, limits)
    assert engine.flush() == reference.flush()
    assert engine.stats == reference.stats
    event(f"hits: {min(hits, 5)}{'+' if hits >= 5 else ''}")


def test_snapshot_is_plain_data_and_restores_state_and_stats() -> None:
    rules = load(*BASES, *correlations(3, 60))
    compiled = compiled_of(rules)
    engine = CorrelationEngine(compiled)
    a, b = ref(rules, "a"), ref(rules, "b")
    for s in range(2):
        engine.observe(a, ev(s, s, User="u1", Host=f"h{s}", N=[1, {"k": 2}]))
        engine.observe(b, ev(s, s, User="u1", Host="h1", N=2.5))
    data = engine.snapshot()
    assert json.loads(json.dumps(data)) == data  # nothing but JSON types
    fresh = CorrelationEngine(compiled)
    assert fresh.state_size() == 0
    assert fresh.restore(data) == len(compiled)
    assert fresh.state_size() == engine.state_size() > 0
    assert fresh.stats == engine.stats
    # The next event completes the window in both.
    assert fresh.observe(a, ev(5, 9, User="u1", Host="h9")) == engine.observe(
        a, ev(5, 9, User="u1", Host="h9")
    )


def test_event_times_keep_their_offset() -> None:
    rules = load(*BASES, *correlations(9, 3600))
    compiled = compiled_of(rules)
    engine = CorrelationEngine(compiled)
    a = ref(rules, "a")
    moments = [
        T0,
        T0.astimezone(timezone(timedelta(hours=2))),
        T0.replace(tzinfo=None) + timedelta(seconds=1),
    ]
    for n, moment in enumerate(moments):
        engine.observe(a, EventRecord({"User": "u1"}, "x", n, moment))
    fresh = CorrelationEngine(compiled)
    fresh.restore(orjson.loads(orjson.dumps(engine.snapshot())))
    [hit] = [h for h in fresh.flush() if h.rule.name == "count_lt"]  # 3 < 9: fires at close
    # equal datetimes may differ in offset; the ISO form shows it
    assert [c.event.timestamp.isoformat() for c in hit.events] == [  # type: ignore[union-attr]
        m.isoformat() for m in moments
    ]


def test_restore_keeps_unchanged_correlations_and_drops_changed_ones() -> None:
    before = load(*BASES, *correlations(3, 60))
    engine = CorrelationEngine(compiled_of(before))
    a = ref(before, "a")
    for s in range(2):
        engine.observe(a, ev(s, s, User="u1", Host="h1", N=1))
    # Reload: count_gte's threshold changes from 3 to 4; everything else stays.
    docs = correlations(3, 60)
    docs[0] = docs[0].replace("gte: 3", "gte: 4")
    compiled = compiled_of(load(*BASES, *docs))
    reloaded = CorrelationEngine(compiled)
    assert reloaded.restore(engine.snapshot()) == len(compiled) - 1
    for s in (3, 4):
        # With its two earlier events kept, count_gte (>= 4) would fire on the second.
        assert reloaded.observe(a, ev(s, s, User="u1", Host="h1", N=1)) == []
    held = {
        c.info.name: len(reloaded.snapshot()["correlations"][definition_key(c)]["groups"][0][6])
        for c in compiled
        if c.info.name in ("count_gte", "count_lt")
    }
    assert held == {"count_gte": 2, "count_lt": 4}  # count_lt (unchanged) kept its two


def test_restore_rejects_other_data() -> None:
    engine = CorrelationEngine(compiled_of(load(*BASES, *correlations(3, 60))))
    with pytest.raises(ValueError):
        engine.restore({"version": 99, "correlations": {}})
