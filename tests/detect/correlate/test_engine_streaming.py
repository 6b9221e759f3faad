"""Out-of-order input, lateness, state expiry, caps and bounded memory."""

from __future__ import annotations

import random
from datetime import timedelta

from tests.detect.correlate.helpers import T0, base_rule, engine_of, ev, ref, run
from vigil.detect.correlate import CorrelationHit
from vigil.events.model import EventRecord

FAILED = base_rule("failed_login")


def count_rule(condition: str, timespan: str = "10m") -> str:
    return f"""
title: count
correlation: {{type: event_count, rules: [failed_login], group-by: [User], timespan: {timespan},
               condition: {condition}}}
"""


def test_out_of_order_events_are_placed_by_event_time() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 3}"))
    failed = ref(rules, "failed_login")
    # Arrival order 500, 0, 300: the three are within 10 minutes -> fires on the third.
    assert engine.observe(failed, ev(500, User="bob")) == []
    assert engine.observe(failed, ev(0, User="bob")) == []
    hits = engine.observe(failed, ev(300, User="bob"))
    assert len(hits) == 1 and hits[0].window_start == T0


def test_out_of_order_does_not_join_events_further_apart_than_timespan() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 3}"))
    failed = ref(rules, "failed_login")
    assert run(engine, [(failed, ev(s, User="bob")) for s in (601, 0, 300)]) == []


def test_late_event_completes_a_later_window() -> None:
    # Window ending at 900 = {700, 900} + late 400 -> 3 events: re-evaluated on arrival
    # (the windows ending at 400 = {0, 400} and 700 = {400, 700} stay below 3).
    engine, rules = engine_of(FAILED, count_rule("{gte: 3}"))
    failed = ref(rules, "failed_login")
    for s in (0, 700, 900):
        assert engine.observe(failed, ev(s, User="bob")) == []
    hits = engine.observe(failed, ev(400, User="bob"))
    assert len(hits) == 1
    assert hits[0].window_start == T0 + timedelta(seconds=400)
    assert hits[0].window_end == T0 + timedelta(seconds=900)


def test_event_before_a_fired_window_is_dropped_as_late() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 2}"))
    failed = ref(rules, "failed_login")
    assert run(engine, [(failed, ev(s, User="bob")) for s in (10, 20)], flush=False)
    assert engine.observe(failed, ev(5, User="bob")) == []
    assert engine.observe(failed, ev(25, User="bob")) == []
    assert engine.stats.late_events_dropped == 1
    assert len(engine.observe(failed, ev(26, User="bob"))) == 1


def test_allowed_lateness_for_window_close_rules() -> None:
    # lt 3 in 10m; an event of the group beyond the window + lateness closes it.
    for lateness, expected_values in ((timedelta(0), [1]), (timedelta(minutes=5), [2])):
        engine, rules = engine_of(FAILED, count_rule("{lt: 3}"), allowed_lateness=lateness)
        failed = ref(rules, "failed_login")
        engine.observe(failed, ev(0, User="bob"))
        closed = engine.observe(failed, ev(700, User="bob"))  # closes [0, 600] if lateness 0
        late = engine.observe(failed, ev(100, User="bob"))  # late for [0, 600]
        flushed = engine.flush()
        values = [h.value for h in closed + late + flushed if h.window_start == T0]
        assert values == expected_values, lateness


def test_idle_groups_expire_with_their_window() -> None:
    engine, rules = engine_of(FAILED, count_rule("{lt: 2}"), allowed_lateness=timedelta(0))
    failed = ref(rules, "failed_login")
    assert engine.observe(failed, ev(0, User="idle")) == []
    # Another group's time passes the idle group's window: it is evaluated and dropped.
    hits = engine.observe(failed, ev(601, User="busy"))
    assert [h.group for h in hits] == [{"User": "idle"}]
    assert engine.stats.expired_groups == 1
    assert engine.state_size() == 2  # one group, one event


def test_group_cap_evicts_least_recently_updated_and_evaluates_close_rules() -> None:
    engine, rules = engine_of(FAILED, count_rule("{lt: 5}", "1d"), max_groups_per_rule=2)
    failed = ref(rules, "failed_login")
    assert engine.observe(failed, ev(0, User="a")) == []
    assert engine.observe(failed, ev(1, User="b")) == []
    assert engine.observe(failed, ev(2, User="a")) == []
    hits = engine.observe(failed, ev(3, User="c"))  # evicts b
    assert [h.group for h in hits] == [{"User": "b"}]
    assert engine.stats.evicted_groups == 1


def test_contributions_are_capped() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 50}"), max_hit_events=10)
    failed = ref(rules, "failed_login")
    (hit,) = run(engine, [(failed, ev(i, i, User="bob")) for i in range(50)])
    assert hit.truncated and hit.event_count == 50 and len(hit.events) == 10
    assert [c.event.record_id for c in hit.events] == list(range(10))


def test_events_without_timestamp_are_not_counted() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 1}"))
    failed = ref(rules, "failed_login")
    assert engine.observe(failed, EventRecord(fields={"User": "bob"})) == []
    assert engine.stats.untimed_events == 1 and engine.state_size() == 0


def test_shuffled_input_within_lateness_gives_the_same_hits_as_sorted() -> None:
    rnd = random.Random(7)
    times = sorted(rnd.uniform(0, 7200) for _ in range(400))
    users = [rnd.choice(["a", "b", "c", "d"]) for _ in times]

    def hits_for(order: list[int]) -> list[tuple[str, int]]:
        engine, rules = engine_of(FAILED, count_rule("{lt: 4}", "5m"))
        failed = ref(rules, "failed_login")
        found = run(engine, [(failed, ev(times[i], i, User=users[i])) for i in order])
        return sorted((str(h.group["User"]), int(h.window_start.timestamp())) for h in found)

    in_order = list(range(len(times)))
    shuffled = in_order[:]
    # Local disorder only: swap neighbours (well within the 10 minute default lateness).
    for i in range(0, len(shuffled) - 1, 2):
        if rnd.random() < 0.5:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    expected = hits_for(in_order)
    assert expected  # the scenario produces hits
    assert hits_for(shuffled) == expected


def _stream(count: int, groups: int) -> list[tuple[float, str]]:
    rnd = random.Random(1)
    return [(i * 0.5 + rnd.uniform(-30, 30), f"user{rnd.randrange(groups)}") for i in range(count)]


def test_bounded_memory_over_200k_events() -> None:
    rules_doc = [
        FAILED,
        count_rule("{gte: 1000}", "5m"),  # crossing: never reached, all state must expire
        """
title: few
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 5m,
              condition: {lt: 2}}
""",
        """
title: distinct hosts
correlation: {type: value_count, rules: [failed_login], group-by: [User], timespan: 5m,
              condition: {field: Computer, gte: 1000}}
""",
    ]
    cap = 2_000
    engine, rules = engine_of(
        *rules_doc, max_groups_per_rule=cap, allowed_lateness=timedelta(minutes=1)
    )
    failed = ref(rules, "failed_login")
    peak = 0
    hits: list[CorrelationHit] = []
    for i, (offset, user) in enumerate(_stream(200_000, 50_000)):
        hits.extend(engine.observe(failed, ev(offset, User=user, Computer=f"pc{i % 7}")))
        if i % 1000 == 0:
            peak = max(peak, engine.state_size())
    # 5m + 1m lateness of a 2 events/s stream is ~720 events per rule, each in its own group
    # at most: three rules -> < 3 * 2 * 800 held items, far below the group cap.
    assert peak < 3 * 2 * 800
    assert engine.stats.expired_groups > 100_000
    assert engine.stats.evicted_groups == 0
    assert hits  # the lt rule fires for expired singleton groups
    engine.flush()
    assert engine.state_size() == 0


def test_group_cap_bounds_state_when_time_does_not_advance() -> None:
    engine, rules = engine_of(FAILED, count_rule("{gte: 1000}", "1d"), max_groups_per_rule=500)
    failed = ref(rules, "failed_login")
    for i in range(20_000):
        engine.observe(failed, ev(i % 60, User=f"user{i}"))
        assert engine.state_size() <= 2 * 500
    assert engine.stats.evicted_groups == 20_000 - 500


def test_per_group_event_cap() -> None:
    engine, rules = engine_of(FAILED, count_rule("{lt: 1000000}", "1d"), max_events_per_group=100)
    failed = ref(rules, "failed_login")
    for i in range(1_000):
        engine.observe(failed, ev(i, User="bob"))
    assert engine.state_size() == 1 + 100
    assert engine.stats.events_dropped == 900
