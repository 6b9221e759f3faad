"""Generated matchers (``codegen.py``) against the reference tree matchers.

The engine evaluates events with Python code generated per rule and per bucket; the matcher
trees stay the reference (``variant.node.match``). These tests generate random rules over every
kind of value predicate and random events over every kind of field value, and require the two
to agree on every rule, and the engine (generated index + generated matchers) to agree with
:meth:`SigmaEngine.match_reference` (tree index + tree matchers) and with the rules' trees.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.detect.sigma.conftest import RuleFactory, load_detections
from tests.detect.sigma.test_engine import CHARS, pattern_st, realise, regex_text, sigma_text
from vigil.detect.sigma import codegen
from vigil.detect.sigma.codegen import CONTAINS_CHAIN_MAX, DFA_CHAIN_MIN, anchors, rule_function
from vigil.detect.sigma.compiler import Not
from vigil.detect.sigma.context import EventContext, LoweredFields, NotFlat
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import CompiledRule
from vigil.events.model import EventRecord

STRING_FIELDS = ("Image", "CommandLine", "User")
STRING_MODIFIERS = (
    "", "|contains", "|startswith", "|endswith", "|contains|all", "|cased", "|cased|contains",
    "|re", "|re|i", "|windash|contains", "|base64offset|contains", "|neq",
)  # fmt: skip
NUMBER_MODIFIERS = ("", "|gt", "|lte", "|neq")


@st.composite
def string_item(draw: st.DrawFn) -> tuple[str, Any, list[list[str]]]:
    field = draw(st.sampled_from(STRING_FIELDS))
    mod = draw(st.sampled_from(STRING_MODIFIERS))
    patterns = draw(st.lists(pattern_st, min_size=2 if "all" in mod else 1, max_size=3))
    if mod.startswith("|re"):
        values = [regex_text(p) for p in patterns]
    elif "base64" in mod:  # wildcards are not allowed under base64 modifiers
        patterns = [[t for t in p if t not in ("*", "?")] or ["x"] for p in patterns]
        values = [sigma_text(p) for p in patterns]
    else:
        values = [sigma_text(p) for p in patterns]
    return f"{field}{mod}", values if len(values) > 1 else values[0], patterns


@st.composite
def other_item(draw: st.DrawFn) -> tuple[str, Any, list[list[str]]]:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        mod = draw(st.sampled_from(NUMBER_MODIFIERS))
        number = draw(st.one_of(st.integers(-3, 20), st.sampled_from([1.5, 0.0, 16.0])))
        return f"{draw(st.sampled_from(['EventID', 'Port']))}{mod}", number, []
    if kind == 1:
        mod = draw(st.sampled_from(["", "|contains", "|startswith", "|endswith"]))
        field, other = draw(st.permutations(STRING_FIELDS))[:2]
        return f"{field}|fieldref{mod}", other, []
    if kind == 2:
        return "Ip|cidr", draw(st.sampled_from(["10.0.0.0/8", "192.168.1.0/24", "::1/128"])), []
    if kind == 3:
        field = draw(st.sampled_from([*STRING_FIELDS, "Flag", "Missing"]))
        return f"{field}|exists", draw(st.booleans()), []
    if kind == 4:
        return draw(st.sampled_from([*STRING_FIELDS, "Flag"])), None, []
    if kind == 5:
        return "Flag", draw(st.booleans()), []
    return "EventID", draw(st.sampled_from(["4", "04", "0x4", "-1"])), []  # numbers as text


@st.composite
def selection(draw: st.DrawFn) -> tuple[Any, list[list[str]]]:
    if draw(st.integers(0, 5)) == 0:  # keywords, plain or numeric
        patterns = draw(st.lists(pattern_st, min_size=1, max_size=2))
        words: list[Any] = [sigma_text(p) for p in patterns]
        if draw(st.booleans()):
            words.append(draw(st.sampled_from(["12", "-1", "true", "1.5"])))
        return words, patterns
    item = st.one_of(string_item(), string_item(), other_item())
    maps = []
    patterns: list[list[str]] = []
    for _ in range(draw(st.integers(1, 2))):
        items = draw(st.lists(item, min_size=1, max_size=3, unique_by=lambda i: i[0]))
        maps.append({key: value for key, value, _ in items})
        patterns.extend(p for _, _, ps in items for p in ps)
    return (maps if len(maps) > 1 else maps[0]), patterns


@st.composite
def rule_spec(draw: st.DrawFn) -> tuple[dict[str, Any], list[list[str]]]:
    sels = draw(st.lists(selection(), min_size=1, max_size=3))
    names = [f"sel{i}" for i in range(len(sels))]
    detection: dict[str, Any] = dict(zip(names, (s for s, _ in sels), strict=True))
    parts = [f"not {n}" if draw(st.booleans()) else n for n in names]
    ops = [draw(st.sampled_from([" and ", " or "])) for _ in parts[1:]]
    tail = "".join(op + p for op, p in zip(ops, parts[1:], strict=True))
    detection["condition"] = parts[0] + tail
    return detection, [p for _, ps in sels for p in ps]


def random_value(rnd: random.Random, patterns: list[list[str]]) -> Any:
    roll = rnd.random()
    if patterns and roll < 0.5:
        return realise(rnd.choice(patterns), rnd)
    if roll < 0.6:
        return rnd.randint(-2, 20)
    if roll < 0.65:
        return rnd.choice([1.5, 16.0, float("inf")])
    if roll < 0.72:
        return rnd.choice([True, False])
    if roll < 0.78:
        return None
    if roll < 0.84:
        return rnd.choice(["10.1.2.3", "192.168.1.77", "::1", "[::1]", "2001:db8::1"])
    if roll < 0.9:
        return [random_value(rnd, patterns), "zz"]
    return "".join(rnd.choice(CHARS + "12") for _ in range(rnd.randint(0, 6)))


def make_event(rnd: random.Random, patterns: list[list[str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in (*STRING_FIELDS, "EventID", "Port", "Ip", "Flag", "Other"):
        if rnd.random() < 0.8:
            fields[name] = random_value(rnd, patterns)
    return fields


def flat(fields: dict[str, Any]) -> bool:
    return all(v is None or type(v) in (str, int, float, bool) for v in fields.values())


def generated(rule: CompiledRule, fields: dict[str, Any]) -> bool | None:
    """The rule's generated matcher on ``fields`` (None: it declined a non-scalar value)."""
    lowered = LoweredFields()
    lowered.fields = fields
    try:
        return rule_function(rule.variants[0].matcher)(lowered, fields, EventContext(fields))
    except NotFlat:
        return None


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(specs=st.lists(rule_spec(), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_generated_code_agrees_with_the_trees(
    specs: list[tuple[dict[str, Any], list[list[str]]]], seed: int
) -> None:
    rnd = random.Random(seed)
    rules = load_detections([detection for detection, _ in specs])
    engine = SigmaEngine(rules)
    patterns = [p for _, ps in specs for p in ps]
    for _ in range(8):
        fields = make_event(rnd, patterns)
        expected = [r.info.id for r in rules if r.variants[0].node.match(EventContext(fields))]
        for rule in rules:
            got = generated(rule, fields)
            if got is None:
                assert not flat(fields), "NotFlat on an event of scalars"
            else:
                assert got is (rule.info.id in expected), (fields, rule.info.id, specs)
        record = EventRecord(fields, logsource={"product": "vigiltest"})
        assert [r.info.id for r in engine.match(record)] == expected, (fields, specs)
        assert [r.info.id for r in engine.match_reference(record)] == expected


# --------------------------------------------------------------------------- pieces


def test_lowered_fields_convert_scalars_like_the_tree() -> None:
    lowered = LoweredFields()
    lowered.fields = {"s": "ÄBC", "i": -12, "f": 1.5, "t": True, "n": None, "l": ["a"], "d": {}}
    assert [lowered[k] for k in ("s", "i", "f", "t", "n", "absent")] == [
        "äbc", "-12", "1.5", "true", None, None,
    ]  # fmt: skip
    for name in ("s", "i", "f", "t"):
        ctx = EventContext(lowered.fields)
        assert ctx.lower_strings(name) == (lowered[name],)
    for name in ("l", "d"):
        with pytest.raises(NotFlat):
            lowered[name]


@pytest.mark.parametrize(
    "detection",
    [
        "sel:\n  Image|endswith: ['\\\\a.exe', '\\\\b.exe']\n  CommandLine|contains: x\n"
        "condition: sel",
        "sel:\n  Image|cased|startswith: Ab\ncondition: sel",
        "sel:\n  EventID: 4\ncondition: sel",
        "sel:\n  Image|re: '^a.b$'\ncondition: sel",
        "sel:\n  Image|exists: true\ncondition: sel",
        "sel:\n  Image|fieldref|endswith: User\ncondition: sel",
        "sel:\n  Image|contains|all: [a, b]\n  User: 'x*y'\ncondition: not sel",
    ],
)
def test_common_predicates_are_inlined(rules: RuleFactory, detection: str) -> None:
    """On string and integer values these never call back into the tree (where the speed
    comes from): the context they would need is a trap here."""

    class Trap:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"the generated code used the tree ({name})")

    fn = rule_function(rules.compile(detection).variants[0].matcher)
    for image in ("\\A.EXE", "Abc", "x", "ab"):
        fields = {"Image": image, "CommandLine": "-X-", "User": "Xay", "EventID": 4}
        lowered = LoweredFields()
        lowered.fields = fields
        fn(lowered, fields, Trap())  # type: ignore[arg-type]


def test_long_contains_lists_use_one_automaton(rules: RuleFactory) -> None:
    words = [f"w{i:03d}x" for i in range(CONTAINS_CHAIN_MAX + 5)]
    rule = rules.compile(
        "sel:\n  Image|contains:\n" + "".join(f"    - {w}\n" for w in words) + "condition: sel"
    )
    for word in (words[0], words[-1]):
        assert rules.check(rule, {"Image": f"AA{word.upper()}BB"}) is True
    assert rules.check(rule, {"Image": "w001"}) is False


def test_a_condition_too_deep_for_the_compiler_falls_back_to_the_tree(rules: RuleFactory) -> None:
    node = rules.compile("sel:\n  Image: a\ncondition: sel").variants[0].matcher
    for _ in range(301):  # odd: the whole is "not Image: a"; Python's parser stops at 200
        node = Not(node)
    fn = rule_function(node)
    assert fn.__code__.co_filename == codegen.__file__  # the tree, not generated code
    for value, expected in (("A", False), ("b", True)):
        lowered = LoweredFields()
        lowered.fields = {"Image": value}
        assert fn(lowered, lowered.fields, EventContext(lowered.fields)) is expected


@given(st.lists(st.text(alphabet="ab:.\\-xyz1", min_size=1, max_size=8), min_size=1, max_size=12))
def test_every_literal_holds_an_anchor(literals: list[str]) -> None:
    chosen = anchors(literals)
    if chosen is not None:
        assert all(any(a in lit for a in chosen) for lit in literals)


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c", "d"]),
        st.one_of(
            st.text(alphabet="aB:-1é", max_size=5),
            st.integers(-20, 20),
            st.none(),
            st.booleans(),
            st.floats(allow_nan=False),
            st.lists(st.text(max_size=3), max_size=2),
        ),
    ),
    st.text(alphabet="aB:-1é", min_size=1, max_size=3),
)
def test_string_text_keeps_every_non_integer_literal(fields: dict[str, Any], literal: str) -> None:
    ctx = EventContext(fields)
    literal = literal.lower()
    if set(literal) - set("-0123456789") and literal in ctx.text():
        assert literal in ctx.string_text()


def test_contains_lists_use_the_c_search(rules: RuleFactory) -> None:
    words = ["alpha", ".bat", "\\temp\\", "中文", "ü.exe"]
    assert len(words) >= DFA_CHAIN_MIN
    rule = rules.compile(
        "sel:\n  Image|contains:\n" + "".join(f"    - '{w}'\n" for w in words) + "condition: sel"
    )
    for word in words:
        assert rules.check(rule, {"Image": f"AA{word.upper()}BB"}) is True
    for benign in ("alph", "bat", "\\temp", "中", "", "u.exe", "x\udc80y"):
        assert rules.check(rule, {"Image": benign}) is False
    assert rules.check(rule, {"Image": "x\udc80.BAT"}) is True


MERGED = (
    "a:\n  CommandLine|contains: ['.bat', '.cmd', '.ps1', '.vbs']\n"
    "b:\n  CommandLine|contains: [':\\temp\\', '\\appdata\\']\n"
    "c:\n  CommandLine|startswith: 'run '\n  Image|endswith: '\\x.exe'\n"
    "d:\n  CommandLine: ['exact', 'go*go']\n"
    "e:\n  CommandLine|endswith: '.hta'\n"
    "n:\n  CommandLine|contains: 'benign'\n"
    "condition: (a or b or c or d or e or not n) and i"
)


@pytest.mark.parametrize(
    ("command_line", "image", "expected"),
    [
        ("RUN.BAT", "x", True),  # a
        ("c:\\TEMP\\y", "c:\\x", True),  # b
        ("run me", "c:\\x.exe", True),  # c
        ("Exact", "x", True),  # d, equality
        ("goXXgo", "x", True),  # d, wildcard
        ("a.HTA", "x", True),  # e
        ("nothing here", "x", True),  # not n
        ("benign", "x", False),
        ("benign .bat", "y", False),  # the and's other term
        (None, "x", True),  # absent: only "not n" holds
        ("run benign", "c:\\y.exe", False),
    ],
)
def test_items_on_one_field_under_an_or_are_tested_as_one(
    rules: RuleFactory, command_line: str | None, image: str, expected: bool
) -> None:
    detection = MERGED.replace("condition:", "i:\n  Image|contains: x\ncondition:")
    node = rules.compile(detection).variants[0].matcher
    source = codegen.RuleSource()
    body = source.expr(node)
    # a, b, d and e merged; c (an and) and not n stay apart
    assert body.count("L['CommandLine']") == 3
    assert any(name.startswith("_dfa") for name in source.env) is (
        codegen._collect_kernel() is not None
    )
    fields: dict[str, Any] = {"Image": image}
    if command_line is not None:
        fields["CommandLine"] = command_line
    assert rules.check(rules.compile(detection), fields) is expected
    lowered = LoweredFields()
    lowered.fields = fields
    assert rule_function(node)(lowered, fields, EventContext(fields)) is expected


def test_and_runs_the_cheapest_term_first(rules: RuleFactory) -> None:
    node = (
        rules.compile(
            "a:\n  CommandLine|re: 'x.*y'\n"
            "b:\n  CommandLine|contains: ['p', 'q', 'r']\n"
            "c:\n  Image|endswith: '\\cmd.exe'\n"
            "condition: a and b and c"
        )
        .variants[0]
        .matcher
    )
    body = codegen.RuleSource().expr(node)
    assert body.index("Image") < body.index("'p' in s") < body.index("_re")
    for image, cmd, expected in (
        ("c:\\cmd.exe", "xpy", True),
        ("c:\\cmd.exe", "ypx", False),
        ("c:\\a.exe", "xpy", False),
    ):
        fields = {"Image": image, "CommandLine": cmd}
        lowered = LoweredFields()
        lowered.fields = fields
        assert rule_function(node)(lowered, fields, EventContext(fields)) is expected
