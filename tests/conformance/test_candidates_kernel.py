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
    plan = probe_plan(bucket.automata, bucket.equals, bucket.numbers, names, _candidates)
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
    words = {"abc": (1, 2), "bcd": (3,), "c": (4,), "d": (5,), "e": (6,), "f": (7,), "g": (8,)}
    a = automaton(words)
    table = {"abc": (9,)}
    dfa = _candidates.Automaton(tuple(words), tuple(words.values()))
    plan = (
        (0, 0, a.iter),
        (2, 0, table),
        (3, "string_text", ("b",), (0, -1, a.iter)),
        (5, 0, dfa, a.iter),
        (3, "text", None, (5, -1, dfa, a.iter)),
    )
    s = ("xabcdx",)
    ctx = Ctx("abcd", ["1"])
    before = [sys.getrefcount(o) for o in (a, table, s, ctx, plan, dfa, *words.values())]
    for _ in range(20_000):
        collect(plan, (0,), s, {"n": 1.5}, ctx)
        collect(((4, "n", {"1": (1,)}),), None, s, {"n": 1.5}, ctx)
    assert [sys.getrefcount(o) for o in (a, table, s, ctx, plan, dfa, *words.values())] == before


def dfa_hits(words: dict[str, tuple[int, ...]], text: str) -> set[int]:
    a = automaton(words)
    dfa = _candidates.Automaton(tuple(words), tuple(words.values()))
    return collect(((5, 0, dfa, a.iter),), (), (text,), {}, Ctx("", []))


def reference_hits(words: dict[str, tuple[int, ...]], text: str) -> set[int]:
    return {p for _, positions in automaton(words).iter(text) for p in positions}


@pytest.mark.parametrize(
    ("words", "text"),
    [
        ({"he": (1,), "she": (2,), "his": (3,), "hers": (4,)}, "ushers"),  # suffix outputs
        ({"aaa": (1,), "aa": (2,), "a": (3,)}, "aa"),
        ({"abcd": (1,), "bc": (2,)}, "xabcx"),
        ({"é": (1,), "ü.exe": (2,), "中文": (3,), "🙂": (4,)}, "über ü.exe 中文文 🙂"),
        ({"\\cmd.exe": (1,), "cmd": (2,)}, "c:\\windows\\system32\\cmd.exe /c"),
        ({"x": (1,)}, ""),
        ({"\x00z": (1,)}, "a\x00z"),
    ],
)
def test_dfa_finds_what_pyahocorasick_finds(words: dict[str, tuple[int, ...]], text: str) -> None:
    assert dfa_hits(words, text) == reference_hits(words, text)


def test_dfa_falls_back_for_text_utf8_cannot_hold() -> None:
    words = {"ab": (1,), "\udc80": (2,)}  # lone surrogates: pyahocorasick scans those
    a = automaton({"ab": (1,)})
    dfa = _candidates.Automaton(("ab",), ((1,),))
    assert collect(((5, 0, dfa, a.iter),), (), ("xab\udc80",), {}, Ctx("", [])) == {1}
    with pytest.raises(UnicodeEncodeError):
        _candidates.Automaton(tuple(words), tuple(words.values()))


def test_dfa_equals_pyahocorasick_on_random_literals() -> None:
    rnd = random.Random(11)
    alphabet = "ab\\.:-éx中"
    for _ in range(300):
        words = {
            "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 5))): (i,)
            for i in range(rnd.randint(1, 40))
        }
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80)))
        assert dfa_hits(words, text) == reference_hits(words, text), (words, text)


def test_dfa_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        _candidates.Automaton(("",), ((1,),))
    with pytest.raises(ValueError):
        _candidates.Automaton(("a", "b"), ((1,),))
    with pytest.raises(TypeError):
        _candidates.Automaton(("a",), ([1],))


def test_dfa_with_more_states_than_16_bits_hold() -> None:
    rnd = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz0123456789"
    words = {"".join(rnd.choice(letters) for _ in range(12)): (i,) for i in range(8_000)}
    assert len({w[:i] for w in words for i in range(1, 13)}) > 70_000  # 32-bit table
    picked = rnd.sample(sorted(words), 50)
    text = "-".join(picked) + "".join(rnd.choice(letters) for _ in range(3_000))
    assert len(dfa_hits(words, text)) >= 50
    assert dfa_hits(words, text) == reference_hits(words, text)


def test_search_says_whether_any_literal_occurs() -> None:
    """``Automaton.search``: what the generated rule matchers use for a ``contains`` list."""
    rnd = random.Random(17)
    alphabet = "ab\\.:-éx中"
    for _ in range(300):
        words = tuple(
            {"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 5))) for _ in range(40)}
        )[: rnd.randint(1, 40)]
        dfa = _candidates.Automaton(words, tuple(() for _ in words))
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 80)))
        assert dfa.search(text) is any(w in text for w in words), (words, text)
    dfa = _candidates.Automaton(("he", "she", "中文", "\\cmd.exe"), ((), (), (), ()))
    for text, expected in (
        ("ushers", True),
        ("x中文x", True),
        ("c:\\windows\\cmd.exe", True),
        ("h", False),
        ("", False),
        ("中", False),
        ("c:\\windows\\cmd.ex", False),
    ):
        assert dfa.search(text) is expected, text


def test_search_on_text_utf8_cannot_hold() -> None:
    dfa = _candidates.Automaton(("ab", "cd"), ((), ()))
    assert dfa.search("x\udc80cd") is True  # lone surrogate: literal by literal
    assert dfa.search("x\udc80c") is False
    with pytest.raises(TypeError):
        dfa.search(b"ab")  # type: ignore[arg-type]
