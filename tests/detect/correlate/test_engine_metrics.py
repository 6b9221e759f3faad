"""value_sum, value_avg, value_percentile and value_median."""

from __future__ import annotations

import pytest

from tests.detect.correlate.helpers import base_rule, engine_of, ev, ref, run
from vigil.detect.correlate.aggregate import percentile

ACCESS = base_rule("website_access")


def metric(kind: str, condition: str, timespan: str = "1h") -> str:
    return f"""
title: Metric {kind}
correlation:
    type: {kind}
    rules:
        - website_access
    group-by:
        - SourceIP
        - User
    timespan: {timespan}
    condition: {condition}
"""


def test_value_sum_spec_example() -> None:
    engine, rules = engine_of(ACCESS, metric("value_sum", "{field: bytes_sent, gt: 1000000}"))
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    stream = [(access, ev(i * 60, bytes_sent=300_000, **who)) for i in range(4)]
    hits = run(engine, stream)
    assert [h.value for h in hits] == [1_200_000]
    assert hits[0].event_count == 4


def test_value_sum_benign_exactly_at_limit_and_outside_window() -> None:
    engine, rules = engine_of(ACCESS, metric("value_sum", "{field: bytes_sent, gt: 1000000}"))
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    stream = [
        (access, ev(0, bytes_sent=500_000, **who)),
        (access, ev(60, bytes_sent="500000", **who)),
    ]
    stream.append((access, ev(3661, bytes_sent=1, **who)))  # first event has left the window
    stream.append((access, ev(3662, bytes_sent="n/a", **who)))  # not numeric: ignored
    assert run(engine, stream) == []


def test_value_avg_spec_example_evaluated_over_whole_window() -> None:
    engine, rules = engine_of(ACCESS, metric("value_avg", "{field: BytesOut, gt: 500}", "24h"))
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    other = {"SourceIP": "10.1.1.2", "User": "amy"}
    stream = [
        (access, ev(0, BytesOut=900, **who)),  # alone would be > 500 ...
        (access, ev(60, BytesOut=100, **who)),  # ... but the day's average is 500
        (access, ev(0, BytesOut=400, **other)),
        (access, ev(60, BytesOut=700, **other)),  # average 550
    ]
    assert [engine.observe(r, e) for r, e in stream] == [[], [], [], []]
    hits = engine.flush()
    assert [(h.group["User"], h.value) for h in hits] == [("amy", 550)]


def test_value_percentile() -> None:
    doc = metric("value_percentile", "{field: duration, percentile: 90, gte: 100}")
    engine, rules = engine_of(ACCESS, doc)
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    slow = [
        (access, ev(i, duration=d, **who)) for i, d in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 190])
    ]
    hits = run(engine, slow)
    # Linear interpolation: rank 0.9 * 9 = 8.1 -> 9 + 0.1 * (190 - 9) = 27.1
    assert hits == []
    engine, rules = engine_of(ACCESS, doc)
    slow = [
        (access, ev(i, duration=d, **who)) for i, d in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 100, 190])
    ]
    hits = run(engine, slow)
    assert len(hits) == 1 and hits[0].value == pytest.approx(109.0)


def test_value_median() -> None:
    doc = metric("value_median", "{field: duration, gt: 10}")
    engine, rules = engine_of(ACCESS, doc)
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    hits = run(engine, [(access, ev(i, duration=d, **who)) for i, d in enumerate([1, 50, 11])])
    assert [h.value for h in hits] == [11]
    engine, rules = engine_of(ACCESS, doc)
    assert (
        run(engine, [(access, ev(i, duration=d, **who)) for i, d in enumerate([1, 50, 10])]) == []
    )


def test_metric_windows_are_anchored_at_first_event() -> None:
    # avg over [0, 3600] = 600 (fires); the next window starts at 3601.
    engine, rules = engine_of(ACCESS, metric("value_avg", "{field: b, gte: 600}"))
    access = ref(rules, "website_access")
    who = {"SourceIP": "10.1.1.1", "User": "bob"}
    stream = [
        (access, ev(0, b=600, **who)),
        (access, ev(3600, b=600, **who)),
        (access, ev(3601, b=10, **who)),
    ]
    hits = run(engine, stream)
    assert [(h.value, h.event_count) for h in hits] == [(600, 2)]


@pytest.mark.parametrize(
    ("values", "p", "expected"),
    [
        ([5.0], 90, 5.0),
        ([1.0, 2.0], 50, 1.5),
        ([1.0, 2.0, 3.0, 4.0], 0, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 100, 4.0),
    ],
)
def test_percentile_definition(values: list[float], p: float, expected: float) -> None:
    assert percentile(values, p) == expected
