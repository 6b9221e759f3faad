"""Conditions (precedence, `x of`, `them`, condition lists), compile failures and Sigma filters."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from tests.detect.sigma.conftest import RuleFactory, rule_yaml
from vigil.detect.sigma.engine import SigmaEngine
from vigil.events.model import EventRecord

#: Four independent selections, each true when its field holds "y".
SELECTIONS = """
a:
  A: 'y'
b:
  B: 'y'
c:
  C: 'y'
d:
  D: 'y'
"""


def event(true: str) -> dict[str, Any]:
    """Fields making exactly the selections named in ``true`` (letters of "abcd") true."""
    return {name.upper(): ("y" if name in true else "n") for name in "abcd"}


def detection(condition: str, selections: str = SELECTIONS) -> str:
    cond = condition if condition.lstrip().startswith("-") else f"'{condition}'"
    if "\n" in condition:
        return selections + "condition:\n" + textwrap.indent(condition.strip("\n"), "  ")
    return selections + f"condition: {cond}\n"


ALL_SUBSETS = ["", "a", "b", "c", "d", "ab", "ac", "bc", "abc", "abd", "bcd", "abcd", "cd", "ad"]


@pytest.mark.parametrize(
    ("condition", "oracle"),
    [
        ("a", lambda t: "a" in t),
        ("a and b", lambda t: "a" in t and "b" in t),
        ("a or b", lambda t: "a" in t or "b" in t),
        # and binds tighter than or
        ("a or b and c", lambda t: "a" in t or ("b" in t and "c" in t)),
        ("a and b or c", lambda t: ("a" in t and "b" in t) or "c" in t),
        # not binds tighter than and
        ("not a and b", lambda t: "a" not in t and "b" in t),
        ("not a or b", lambda t: "a" not in t or "b" in t),
        ("a and not b or c", lambda t: ("a" in t and "b" not in t) or "c" in t),
        # parentheses
        ("(a or b) and c", lambda t: ("a" in t or "b" in t) and "c" in t),
        ("not (a or b)", lambda t: not ("a" in t or "b" in t)),
        (
            "not (a and b) and (c or d)",
            lambda t: not ("a" in t and "b" in t) and ("c" in t or "d" in t),
        ),
        ("((a))", lambda t: "a" in t),
        (
            "a and (b or (c and not d))",
            lambda t: "a" in t and ("b" in t or ("c" in t and "d" not in t)),
        ),
        ("a and b or c and d", lambda t: ("a" in t and "b" in t) or ("c" in t and "d" in t)),
        ("not not a", lambda t: "a" in t),
    ],
)
def test_boolean_conditions(rules: RuleFactory, condition: str, oracle: Any) -> None:
    rule = rules.compile(detection(condition))
    for true in ALL_SUBSETS:
        assert rules.check(rule, event(true)) is bool(oracle(true)), (condition, true)


X_OF = """
selection_one:
  A: 'y'
selection_two:
  B: 'y'
filter_main:
  C: 'y'
_helper:
  D: 'y'
"""


@pytest.mark.parametrize(
    ("condition", "oracle"),
    [
        ("1 of selection_*", lambda t: "a" in t or "b" in t),
        ("any of selection_*", lambda t: "a" in t or "b" in t),
        ("all of selection_*", lambda t: "a" in t and "b" in t),
        (
            "1 of selection_* and not 1 of filter_*",
            lambda t: ("a" in t or "b" in t) and "c" not in t,
        ),
        (
            "all of selection_* and not filter_main",
            lambda t: "a" in t and "b" in t and "c" not in t,
        ),
        ("1 of *_one", lambda t: "a" in t),
        ("1 of sel*", lambda t: "a" in t or "b" in t),
        ("not 1 of selection_*", lambda t: not ("a" in t or "b" in t)),
        # `them` excludes identifiers starting with an underscore.
        ("1 of them", lambda t: "a" in t or "b" in t or "c" in t),
        ("all of them", lambda t: "a" in t and "b" in t and "c" in t),
        ("1 of _helper*", lambda t: "d" in t),
        ("all of them or _helper", lambda t: ("a" in t and "b" in t and "c" in t) or "d" in t),
    ],
)
def test_x_of_conditions(rules: RuleFactory, condition: str, oracle: Any) -> None:
    rule = rules.compile(detection(condition, X_OF))
    for true in ALL_SUBSETS:
        assert rules.check(rule, event(true)) is bool(oracle(true)), (condition, true)


def test_them_ignores_a_matching_underscore_identifier(rules: RuleFactory) -> None:
    rule = rules.compile(detection("1 of them", X_OF))
    assert rules.check(rule, event("d")) is False
    rule = rules.compile(detection("all of them", X_OF))
    assert rules.check(rule, event("abc")) is True  # _helper (D) is false and does not count


def test_condition_list_is_or(rules: RuleFactory) -> None:
    rule = rules.compile(detection("- a and b\n- c and not d"))
    for true in ALL_SUBSETS:
        expected = ("a" in true and "b" in true) or ("c" in true and "d" not in true)
        assert rules.check(rule, event(true)) is expected, true


def test_selection_name_patterns_with_maps_and_lists(rules: RuleFactory) -> None:
    det = """
    selection_img:
      - Image|endswith: '\\rundll32.exe'
      - OriginalFileName: 'RUNDLL32.EXE'
    selection_cli:
      CommandLine|contains: 'javascript:'
    filter_optional_x:
      ParentImage|endswith: '\\trusted.exe'
    condition: all of selection_* and not 1 of filter_optional_*
    """
    rule = rules.compile(det)
    base = {"Image": r"C:\Windows\System32\rundll32.exe", "CommandLine": "x javascript:y"}
    assert rules.check(rule, base) is True
    assert rules.check(rule, {**base, "ParentImage": r"C:\trusted.exe"}) is False
    assert rules.check(rule, {**base, "CommandLine": "x"}) is False
    alt = {"Image": r"C:\x.exe", "OriginalFileName": "rundll32.exe", "CommandLine": "javascript:"}
    assert rules.check(rule, alt) is True


# --------------------------------------------------------------------------- compile failures


@pytest.mark.parametrize(
    ("det", "needle"),
    [
        ("sel:\n  A: x\ncondition: sel and nosuch", "nosuch"),
        ("sel:\n  A: x\ncondition: 1 of nothing_*", "nothing_*"),
        ("sel:\n  A: x\ncondition: sel and (", "condition"),
        ("sel:\n  A|nosuchmodifier: x\ncondition: sel", "nosuchmodifier"),
        ("sel:\n  A|lt: abc\ncondition: sel", "abc"),
        ("sel:\n  A|cidr: '10.0.0.0/99'\ncondition: sel", "10.0.0.0/99"),
    ],
)
def test_compile_failures_have_a_precise_reason(rules: RuleFactory, det: str, needle: str) -> None:
    rid = "3a5d0c2e-8f8b-4c1d-9a37-6b1f0e2d4c11"
    result = rules.load(rule_yaml(det, rule_id=rid, title="Broken rule"))
    assert not result.rules
    [failure] = result.failures
    assert failure.rule_id == rid
    assert failure.kind == "error"
    assert needle.lower() in failure.reason.lower(), failure.reason
    assert failure.path.endswith(".yml")


def test_undefined_identifier_message(rules: RuleFactory) -> None:
    result = rules.load(rule_yaml("sel:\n  A: x\ncondition: sel or missing_sel"))
    [failure] = result.failures
    assert "missing_sel" in failure.reason
    assert "undefined" in failure.reason.lower() or "not" in failure.reason.lower()


# --------------------------------------------------------------------------- filters

RULE_A = "6f3e2987-db24-4c78-a860-b4f4095a7095"
RULE_B = "df0841c0-9846-4e9f-ad8a-7df91571771b"

PROC_RULE = """
title: {title}
id: {rid}
status: test
level: high
logsource:
    product: windows
    category: process_creation
detection:
    selection:
        Image|endswith: '\\rar.exe'
    condition: selection
"""

FILTER_DOC = """
title: Filter Administrator account
description: The valid administrator account start with adm_
logsource:
    category: process_creation
    product: windows
filter:
    rules:
        - {rid}
    selection:
        User|startswith: 'adm_'
    condition: not selection
"""


def sysmon_proc(image: str, user: str) -> EventRecord:
    return EventRecord(
        fields={
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "EventID": 1,
            "Image": image,
            "User": user,
        }
    )


def ids(engine: SigmaEngine, record: EventRecord) -> set[str | None]:
    return {r.info.id for r in engine.match(record)}


def test_filter_suppresses_only_its_rules_and_only_filtered_events(rules: RuleFactory) -> None:
    result = rules.load(
        PROC_RULE.format(title="Rar A", rid=RULE_A),
        PROC_RULE.format(title="Rar B", rid=RULE_B),
        FILTER_DOC.format(rid=RULE_A),
    )
    assert not result.failures, result.failures
    assert len(result.rules) == 2
    engine = SigmaEngine(result.rules)
    # The filtered user: rule A is suppressed, rule B (not referenced) still fires.
    assert ids(engine, sysmon_proc(r"C:\rar.exe", "adm_alice")) == {RULE_B}
    # Another user: both fire.
    assert ids(engine, sysmon_proc(r"C:\rar.exe", "bob")) == {RULE_A, RULE_B}
    # The filter does not make the rule fire on its own.
    assert ids(engine, sysmon_proc(r"C:\notepad.exe", "bob")) == set()


def test_filter_in_same_file_as_rule_and_by_any(rules: RuleFactory) -> None:
    text = (
        PROC_RULE.format(title="Rar A", rid=RULE_A)
        + "---\n"
        + FILTER_DOC.format(rid=RULE_A).replace(f"- {RULE_A}", "[]").replace("rules:\n", "rules: ")
    )
    result = rules.load(text)
    assert not result.failures, result.failures
    engine = SigmaEngine(result.rules)
    assert ids(engine, sysmon_proc(r"C:\rar.exe", "ADM_x")) == set()
    assert ids(engine, sysmon_proc(r"C:\rar.exe", "user")) == {RULE_A}


def test_filter_with_other_logsource_does_not_apply(rules: RuleFactory) -> None:
    other = FILTER_DOC.format(rid=RULE_A).replace("category: process_creation", "category: dns")
    result = rules.load(PROC_RULE.format(title="Rar A", rid=RULE_A), other)
    assert not result.failures, result.failures
    engine = SigmaEngine(result.rules)
    assert ids(engine, sysmon_proc(r"C:\rar.exe", "adm_alice")) == {RULE_A}


def test_filter_uses_them_and_keeps_rule_them_intact(rules: RuleFactory) -> None:
    rule = rule_yaml(
        "sel_a:\n  A: 'y'\nsel_b:\n  B: 'y'\ncondition: 1 of them",
        rule_id=RULE_A,
        logsource="product: vigiltest",
    )
    flt = """
title: Drop host H
logsource:
    product: vigiltest
filter:
    rules: any
    host:
        Host: 'h'
    condition: not 1 of them
"""
    result = rules.load(rule, flt)
    assert not result.failures, result.failures
    [compiled] = result.rules
    assert rules.check(compiled, {"A": "y", "Host": "other"}) is True
    assert rules.check(compiled, {"B": "y"}) is True
    assert rules.check(compiled, {"A": "y", "Host": "H"}) is False
    # The filter's own identifiers are not part of the rule's `1 of them`.
    assert rules.check(compiled, {"Host": "other"}) is False


def test_broken_filter_is_reported(rules: RuleFactory) -> None:
    broken = """
title: Broken filter
id: 0a6a2a5e-5f43-4f4e-9d4b-9a0a1f7a0b77
logsource:
    product: windows
filter:
    selection:
        User: x
"""
    result = rules.load(broken)
    [failure] = result.failures
    assert failure.rule_id == "0a6a2a5e-5f43-4f4e-9d4b-9a0a1f7a0b77"
    assert "condition" in failure.reason.lower()
