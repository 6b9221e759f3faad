"""Generated matchers against the tree matchers on the whole SigmaHQ rule set.

For every event of SigmaHQ's regression data, and for randomly mutated copies of them (case
flips, values as numbers or text, removed fields, nulls, lists), every rule routed to the event
must give the same answer through its generated function as through its matcher tree, and the
engine must report the same rules as :meth:`SigmaEngine.match_reference`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.detect.sigma.context import EventContext, LoweredFields, NotFlat
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import load_rules
from vigil.detect.sigma.mapping import load_mapping
from vigil.events.model import EventRecord
from vigil.events.readers import read_events

SIGMA = Path(__file__).resolve().parents[2].parent / "shared" / "sigma"
RULE_DIRS = [SIGMA / "rules", SIGMA / "rules-emerging-threats", SIGMA / "rules-threat-hunting"]

if not SIGMA.is_dir():
    pytest.skip(f"SigmaHQ data not found at {SIGMA}", allow_module_level=True)


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    result = load_rules(RULE_DIRS, mapping=load_mapping())
    return SigmaEngine(result.rules)


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    out = []
    for path in sorted((SIGMA / "regression_data").rglob("*.evtx")):
        out.extend(r.fields for r in read_events(path) if isinstance(r, EventRecord))
    assert len(out) > 200
    return out


def check(engine: SigmaEngine, fields: dict[str, Any]) -> None:
    record = EventRecord(fields)
    expected = [r.info.id for r in engine.match_reference(record)]
    assert [r.info.id for r in engine.match(record)] == expected
    buckets = engine._route(record)
    if not buckets:
        return
    # Every rule the event is routed to, candidate or not: generated function == tree.
    key = tuple(sorted(set(buckets)))
    bucket = engine._merged.get(key) or engine._merged_bucket(key)
    flat = all(v is None or type(v) in (str, int, float, bool) for v in fields.values())
    for _, variant in bucket.entries:
        lowered = LoweredFields()
        lowered.fields = fields
        ctx = EventContext(fields)
        try:
            got = engine._function(variant.matcher)(lowered, fields, ctx)
        except NotFlat:
            assert not flat
            continue
        assert got is variant.matcher.match(EventContext(fields)), (variant.matcher, fields)


def test_every_regression_event(engine: SigmaEngine, events: list[dict[str, Any]]) -> None:
    matched = 0
    for fields in events:
        check(engine, fields)
        matched += bool(engine.match(EventRecord(fields)))
    assert matched > 200  # the samples are attacks: most of them match something


def mutate(fields: dict[str, Any], rnd: random.Random) -> dict[str, Any]:
    out = dict(fields)
    for name in list(out):
        value = out[name]
        roll = rnd.random()
        if roll < 0.05:
            del out[name]
        elif roll < 0.1:
            out[name] = None
        elif roll < 0.2 and isinstance(value, str):
            out[name] = "".join(c.swapcase() if rnd.random() < 0.3 else c for c in value)
        elif roll < 0.25 and isinstance(value, int):
            out[name] = str(value)
        elif roll < 0.3 and isinstance(value, str) and value.isdigit():
            out[name] = int(value)
        elif roll < 0.33:
            out[name] = [value, "x"]
        elif roll < 0.36 and isinstance(value, str) and len(value) > 2:
            cut = rnd.randrange(len(value))
            out[name] = value[:cut] + value[cut + 1 :]
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pick=st.integers(0, 10**6), seed=st.integers(0, 2**32 - 1))
def test_mutated_regression_events(
    engine: SigmaEngine, events: list[dict[str, Any]], pick: int, seed: int
) -> None:
    check(engine, mutate(events[pick % len(events)], random.Random(seed)))
