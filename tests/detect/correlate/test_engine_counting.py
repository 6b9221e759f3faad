"""event_count and value_count: thresholds, window edges, groups, fire-once, close-time ops."""

from __future__ import annotations

from datetime import timedelta

from tests.detect.correlate.helpers import at, base_rule, engine_of, ev, ref, run

FAILED = base_rule("failed_login", "5638f7c0-ac70-491d-8465-2a65075e0d86", "Failed login")


def event_count(condition: str, timespan: str = "1h", group_by: str = "[ComputerName]") -> str:
    return f"""
title: Many failed logins
id: 0e95725d-7320-415d-80f7-004da920fc11
level: high
tags: [attack.t1110]
correlation:
    type: event_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by: {group_by}
    timespan: {timespan}
    condition: {condition}
"""


def test_event_count_spec_example_positive_and_benign() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 100}"))
    failed = ref(rules, "failed_login")
    # 100 failures on host A within an hour, 99 on host B.
    stream = [(failed, ev(i * 30, i, ComputerName="A")) for i in range(100)]
    stream += [(failed, ev(i * 30, i, ComputerName="B")) for i in range(99)]
    hits = run(engine, stream)
    assert len(hits) == 1
    hit = hits[0]
    assert hit.group == {"ComputerName": "A"}
    assert hit.value == 100
    assert hit.rule.title == "Many failed logins"
    assert hit.rule.level == "high" and hit.rule.tags == ("attack.t1110",)
    assert hit.window_start == at(0) and hit.window_end == at(99 * 30)
    assert hit.event_count == 100 and len(hit.events) == 100 and not hit.truncated
    assert [c.event.record_id for c in hit.events] == list(range(100))
    assert all(c.rule == failed for c in hit.events)


def test_hit_is_returned_by_the_observe_that_crosses_the_threshold() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 3}"))
    failed = ref(rules, "failed_login")
    assert engine.observe(failed, ev(0, ComputerName="A")) == []
    assert engine.observe(failed, ev(1, ComputerName="A")) == []
    assert len(engine.observe(failed, ev(2, ComputerName="A"))) == 1
    assert engine.flush() == []


def test_gt_needs_one_more() -> None:
    engine, rules = engine_of(FAILED, event_count("{gt: 3}"))
    failed = ref(rules, "failed_login")
    assert run(engine, [(failed, ev(i, ComputerName="A")) for i in range(3)]) == []
    engine, rules = engine_of(FAILED, event_count("{gt: 3}"))
    hits = run(engine, [(failed, ev(i, ComputerName="A")) for i in range(4)])
    assert [h.value for h in hits] == [4]


def test_window_edge_inclusive_at_timespan() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 2}", timespan="10m"))
    failed = ref(rules, "failed_login")
    hits = run(engine, [(failed, ev(0, ComputerName="A")), (failed, ev(600, ComputerName="A"))])
    assert len(hits) == 1
    assert hits[0].window_start == at(0) and hits[0].window_end == at(600)


def test_window_edge_one_second_over_does_not_match() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 2}", timespan="10m"))
    failed = ref(rules, "failed_login")
    assert (
        run(engine, [(failed, ev(0, ComputerName="A")), (failed, ev(601, ComputerName="A"))]) == []
    )


def test_window_slides_rather_than_using_fixed_buckets() -> None:
    # Three events straddling an hour boundary (12:59:00 .. 13:01:00) are within 1h.
    engine, rules = engine_of(FAILED, event_count("{gte: 3}"))
    failed = ref(rules, "failed_login")
    stream = [(failed, ev(s, ComputerName="A")) for s in (3540, 3580, 3660)]
    assert len(run(engine, stream)) == 1


def test_group_by_separates_and_missing_group_field_is_not_counted() -> None:
    engine, rules = engine_of(
        FAILED, event_count("{gte: 2}", group_by="[TargetUserName, TargetDomainName]")
    )
    failed = ref(rules, "failed_login")
    stream = [
        (failed, ev(0, TargetUserName="bob", TargetDomainName="CORP")),
        (failed, ev(1, TargetUserName="bob", TargetDomainName="LAB")),
        (failed, ev(2, TargetUserName="bob")),
        (failed, ev(3, TargetUserName="alice", TargetDomainName="CORP")),
    ]
    assert run(engine, stream) == []
    assert engine.stats.ungrouped_events == 1
    engine, rules = engine_of(
        FAILED, event_count("{gte: 2}", group_by="[TargetUserName, TargetDomainName]")
    )
    stream.append((failed, ev(4, TargetUserName="bob", TargetDomainName="LAB")))
    hits = run(engine, stream)
    assert [h.group for h in hits] == [{"TargetUserName": "bob", "TargetDomainName": "LAB"}]


def test_no_group_by_is_one_global_group() -> None:
    doc = """
title: any
correlation: {type: event_count, rules: [failed_login], timespan: 1m, condition: {gte: 2}}
"""
    engine, rules = engine_of(FAILED, doc)
    failed = ref(rules, "failed_login")
    hits = run(engine, [(failed, ev(0, ComputerName="A")), (failed, ev(1, ComputerName="B"))])
    assert [h.group for h in hits] == [{}]


def test_fires_once_then_resets() -> None:
    # 25 events in 25 seconds, gte 10: hits at the 10th and 20th event only.
    engine, rules = engine_of(FAILED, event_count("{gte: 10}"))
    failed = ref(rules, "failed_login")
    fired_at = []
    for i in range(25):
        if engine.observe(failed, ev(i, ComputerName="A")):
            fired_at.append(i)
    assert fired_at == [9, 19]
    assert engine.flush() == []


def test_reset_consumes_events_so_each_counts_once() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 3}"))
    failed = ref(rules, "failed_login")
    hits = run(engine, [(failed, ev(i, i, ComputerName="A")) for i in range(6)])
    assert [[c.event.record_id for c in h.events] for h in hits] == [[0, 1, 2], [3, 4, 5]]


def test_same_second_burst_after_hit_counts_towards_next_hit() -> None:
    engine, rules = engine_of(FAILED, event_count("{gte: 3}"))
    failed = ref(rules, "failed_login")
    hits = run(engine, [(failed, ev(5, i, ComputerName="A")) for i in range(6)])
    assert len(hits) == 2


def test_lt_fires_only_when_window_closes() -> None:
    engine, rules = engine_of(
        FAILED, event_count("{lt: 3}", timespan="10m"), allowed_lateness=timedelta(0)
    )
    failed = ref(rules, "failed_login")
    # Host A: 2 events in its first window -> fewer than 3; host B: 3 events -> not.
    assert engine.observe(failed, ev(0, ComputerName="A")) == []
    assert engine.observe(failed, ev(60, ComputerName="A")) == []
    for s in (0, 10, 20):
        assert engine.observe(failed, ev(s, ComputerName="B")) == []
    # An event of A after the window [0, 600] closes A's first window.
    closed = engine.observe(failed, ev(601, ComputerName="A"))
    assert [(h.group, h.value) for h in closed] == [({"ComputerName": "A"}, 2)]
    assert closed[0].window_start == at(0) and closed[0].window_end == at(600)
    # At flush: A's second window (1 event) fires; B's (3 events) does not.
    flushed = engine.flush()
    assert [(h.group, h.value) for h in flushed] == [({"ComputerName": "A"}, 1)]


def test_event_exactly_at_window_end_belongs_to_the_window_for_close_evaluation() -> None:
    engine, rules = engine_of(FAILED, event_count("{eq: 2}", timespan="10m"))
    failed = ref(rules, "failed_login")
    hits = run(engine, [(failed, ev(0, ComputerName="A")), (failed, ev(600, ComputerName="A"))])
    assert [h.value for h in hits] == [2]
    engine, rules = engine_of(FAILED, event_count("{eq: 2}", timespan="10m"))
    hits = run(engine, [(failed, ev(0, ComputerName="A")), (failed, ev(601, ComputerName="A"))])
    assert hits == []


def test_neq_and_range_conditions() -> None:
    doc = """
title: range
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [ComputerName]
    timespan: 1h
    condition:
        gt: 2
        lte: 4
"""
    engine, rules = engine_of(FAILED, doc)
    failed = ref(rules, "failed_login")
    stream = []
    for host, n in (("two", 2), ("three", 3), ("four", 4), ("five", 5)):
        stream += [(failed, ev(i, ComputerName=host)) for i in range(n)]
    hits = run(engine, stream)
    assert sorted(h.group["ComputerName"] for h in hits) == ["four", "three"]

    engine, rules = engine_of(FAILED, event_count("{neq: 3}"))
    hits = run(engine, stream)
    assert sorted(h.group["ComputerName"] for h in hits) == ["five", "four", "two"]


VALUE_COUNT = """
title: Failed login
id: 0e95725d-7320-415d-80f7-004da920fc12
correlation:
    type: value_count
    rules:
        - 5638f7c0-ac70-491d-8465-2a65075e0d86
    group-by:
        - ComputerName
        - WorkstationName
    timespan: 1d
    condition:
        field: User
        gte: 100
"""


def test_value_count_spec_example() -> None:
    engine, rules = engine_of(FAILED, VALUE_COUNT)
    failed = ref(rules, "failed_login")
    stream = [
        (failed, ev(i * 60, ComputerName="DC1", WorkstationName="WS1", User=f"user{i}"))
        for i in range(100)
    ]
    hits = run(engine, stream)
    assert len(hits) == 1 and hits[0].value == 100
    assert hits[0].group == {"ComputerName": "DC1", "WorkstationName": "WS1"}


def test_value_count_benign_repeated_users_and_other_workstation() -> None:
    engine, rules = engine_of(FAILED, VALUE_COUNT)
    failed = ref(rules, "failed_login")
    # 500 failures but only 99 distinct users; plus 1 more distinct user on another workstation.
    stream = [
        (failed, ev(i, ComputerName="DC1", WorkstationName="WS1", User=f"user{i % 99}"))
        for i in range(500)
    ]
    stream.append((failed, ev(600, ComputerName="DC1", WorkstationName="WS2", User="other")))
    stream.append((failed, ev(601, ComputerName="DC1", WorkstationName="WS1")))  # no User
    assert run(engine, stream) == []


def test_value_count_window_is_one_day() -> None:
    engine, rules = engine_of(FAILED, VALUE_COUNT.replace("gte: 100", "gte: 3"))
    failed = ref(rules, "failed_login")
    base = {"ComputerName": "DC1", "WorkstationName": "WS1"}
    stream = [
        (failed, ev(0, User="a", **base)),
        (failed, ev(3600, User="b", **base)),
        (failed, ev(86401, User="c", **base)),  # 'a' has left the window
    ]
    assert run(engine, stream) == []
    engine, rules = engine_of(FAILED, VALUE_COUNT.replace("gte: 100", "gte: 3"))
    stream[-1] = (failed, ev(86400, User="c", **base))
    assert len(run(engine, stream)) == 1


def test_value_count_multiple_fields_are_anded() -> None:
    doc = VALUE_COUNT.replace("field: User", "field: [User, Domain]").replace("gte: 100", "gte: 2")
    engine, rules = engine_of(FAILED, doc)
    failed = ref(rules, "failed_login")
    base = {"ComputerName": "DC1", "WorkstationName": "WS1"}
    hits = run(
        engine,
        [
            (failed, ev(0, User="a", Domain="X", **base)),
            (failed, ev(1, User="a", Domain="Y", **base)),
        ],
    )
    assert [h.value for h in hits] == [2]
