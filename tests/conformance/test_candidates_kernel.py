"""``vigil._candidates.collect`` finds exactly the candidates the index's Python code finds.

On every bucket an event of SigmaHQ's regression data (and mutated copies) routes to, with all
SigmaHQ rules loaded, the kernel's set equals ``Bucket.candidates`` (the reference probe the
generated Python code spells out). Plus each step kind on a hand-built plan, malformed plans
(an error, never a crash) and reference counts.
"""

from __future__ import annotations

import os
import random
import sys
from typing import Any

import ahocorasick
import pytest

from vigil import speedups
from vigil.detect.sigma.codegen import probe_plan
from vigil.detect.sigma.context import EventContext, LoweredFields, NotFlat
from vigil.detect.sigma.engine import SigmaEngine
from vigil.events.model import EventRecord

from .test_sigma_codegen import engine, events, mutate

__all__ = ["engine", "events"]

try:
    from vigil import _candidates
except ImportError:
    _candidates = None  # type: ignore[assignment]

if os.environ.get("VIGIL_REQUIRE_SPEEDUPS", "") not in ("", "0"):
    # CI: a silently failed optional build must fail here, not skip.
    assert _candidates is not None, "vigil._candidates was not built (see pip's output)"
if speedups.NATIVE is None or _candidates is None:
    pytest.skip("the C kernels are not built or VIGIL_PURE_PYTHON is set", allow_module_level=True)

collect = _candidates.collect
lower_fields = speedups.NATIVE.lower_fields


def kernel_candidates(bucket: Any, fields: dict[str, Any]) -> set[int] | None:
    names = tuple(
        dict.fromkeys([f for f, _ in bucket.automata if f] + [f for f, _ in bucket.equals])
    )
    lowered = LoweredFields()
    lowered.fields = fields
    try:
        values = lower_fields(fields, lowered, names)
    except NotFlat:
        return None  # list values: the generated code takes the reference path
    plan = probe_plan(bucket.automata, bucket.equals, bucket.numbers, names)
    return collect(plan, bucket.always, values, fields, EventContext(fields))


def test_same_candidates_as_the_index_on_every_regression_event(
    engine: SigmaEngine, events: list[dict[str, Any]]
) -> None:
    rnd = random.Random(7)
    samples = events + [mutate(rnd.choice(events), rnd) for _ in range(2000)]
    compared = nonempty = 0
    for fields in samples:
        bucket = engine._bucket_for(EventRecord(fields))
        if bucket is None:
            continue
        got = kernel_candidates(bucket, fields)
        if got is None:
            continue
        assert got == set(bucket.candidates(EventContext(fields))), fields
        compared += 1
        nonempty += bool(got)
    assert compared > 800 and nonempty > 400, (compared, nonempty)


def automaton(words: dict[str, tuple[int, ...]]) -> Any:
    a = ahocorasick.Automaton()
    for word, positions in words.items():
        a.add_word(word, positions)
    a.make_automaton()
    return a


class Ctx:
    def __init__(self, text: str, numbers: list[str]) -> None:
        self._text, self._numbers = text, numbers

    def string_text(self) -> str:
        return self._text

    def text(self) -> str:
        return self._text + "\x1f42"

    def number_keys(self, name: str) -> list[str]:
        return self._numbers


def test_each_step_kind() -> None:
    big = automaton({w: (i,) for i, w in enumerate(["mimikatz", "kiwi", "a", "b", "c", "d", "e"])})
    plan = (
        (0, 0, big.iter),  # automaton on S[0]
        (1, 1, ("psexec", "dump"), ((10, 11), (12,))),  # `in` tests on S[1]
        (2, 2, {"cmd.exe": (20,), "x": (21,)}),  # whole value
        (3, "string_text", ("zz",), (1, -1, ("zz top",), ((30,),))),  # anchored keyword
        (3, "text", None, (1, -1, ("42",), ((31,),))),  # unanchored, integers included
        (4, "EventID", {"1": (40,), "4688": (41,)}),  # exact int
        (4, "Level", {"4": (42,)}),  # another value: C.number_keys
    )
    fields = {"EventID": 4688, "Level": "4"}
    s = ("run mimikatz.exe", "psexec -s dump", "cmd.exe")
    got = collect(plan, (99,), s, fields, Ctx("zz top", ["4"]))
    assert got == {99, 0, 2, 6, 10, 11, 12, 20, 30, 31, 41, 42}  # mimikatz, a, e
    # None values, absent fields and a missing anchor add nothing.
    assert collect(plan, (), (None, None, None), {}, Ctx("nothing", [])) == {31}
    assert collect(plan, (), (None, None, "y"), {"EventID": None}, Ctx("", [])) == {31}


@pytest.mark.parametrize(
    ("plan", "s", "error"),
    [
        (((7, 0),), ("x",), ValueError),  # unknown kind
        (((0,),), ("x",), ValueError),  # too short
        (((2, 5, {}),), ("x",), IndexError),  # index beyond S
        (((1, 0, ("a",), ()),), ("a",), TypeError),  # words and positions differ
        (((2, 0, {"a": [1]}),), ("a",), TypeError),  # positions not a tuple
        (((3, "nope", None, (1, -1, (), ())),), (), AttributeError),  # no such method
        ((("x",),), (), TypeError),  # kind not an int
        (((0, 0, len),), ("abc",), TypeError),  # iter_fn gives no iterator
        (((3, "text", None, ()),), (), ValueError),  # empty inner step
    ],
)
def test_malformed_plans_raise(plan: Any, s: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        collect(plan, (), s, {}, Ctx("", []))


def test_no_reference_leaks() -> None:
    a = automaton(
        {"abc": (1, 2), "bcd": (3,), "c": (4,), "d": (5,), "e": (6,), "f": (7,), "g": (8,)}
    )
    table = {"abc": (9,)}
    plan = ((0, 0, a.iter), (2, 0, table), (3, "string_text", ("b",), (0, -1, a.iter)))
    s = ("xabcdx",)
    ctx = Ctx("abcd", ["1"])
    before = [sys.getrefcount(o) for o in (a, table, s, ctx, plan)]
    for _ in range(20_000):
        collect(plan, (0,), s, {"n": 1.5}, ctx)
        collect(((4, "n", {"1": (1,)}),), None, s, {"n": 1.5}, ctx)
    assert [sys.getrefcount(o) for o in (a, table, s, ctx, plan)] == before
