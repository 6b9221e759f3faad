"""SigmaEngine: routing through the logsource mapping, logsource hints, user mappings, and the
candidate index's soundness (it never drops a rule whose node matches)."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.detect.sigma.conftest import RuleFactory, default_mapping, load_detections, rule_yaml
from vigil.detect.sigma.context import EventContext
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import CompiledRule, load_rules
from vigil.detect.sigma.mapping import load_mapping
from vigil.events.model import EventRecord

SYSMON = "Microsoft-Windows-Sysmon/Operational"

PROC_DETECTION = """
selection:
  Image|endswith: '\\certutil.exe'
  CommandLine|contains: 'urlcache'
condition: selection
"""


def proc_rule(rules: RuleFactory) -> CompiledRule:
    return rules.compile(
        PROC_DETECTION, logsource="product: windows\ncategory: process_creation", title="Certutil"
    )


CERTUTIL = {"Image": r"C:\Windows\System32\certutil.exe", "CommandLine": "certutil -urlcache -f x"}


def titles(engine: SigmaEngine, record: EventRecord) -> list[str]:
    return [r.info.title for r in engine.match(record)]


# --------------------------------------------------------------------------- routing


def test_process_creation_rule_routes_sysmon_1_not_sysmon_3(rules: RuleFactory) -> None:
    engine = SigmaEngine([proc_rule(rules)])
    assert titles(engine, EventRecord({"Channel": SYSMON, "EventID": 1, **CERTUTIL})) == [
        "Certutil"
    ]
    assert titles(engine, EventRecord({"Channel": SYSMON, "EventID": 3, **CERTUTIL})) == []
    assert titles(engine, EventRecord({"Channel": "Security", "EventID": 1, **CERTUTIL})) == []
    assert titles(engine, EventRecord(dict(CERTUTIL))) == []
    # Routing values compare like Sigma values: case-insensitively, numbers as text.
    assert titles(engine, EventRecord({"Channel": SYSMON.lower(), "EventID": "1", **CERTUTIL}))
    # Same routing, benign content.
    benign = {"Channel": SYSMON, "EventID": 1, "Image": r"C:\x\notepad.exe", "CommandLine": "x"}
    assert titles(engine, EventRecord(benign)) == []


def test_security_4688_uses_the_mapping_field_names(rules: RuleFactory) -> None:
    engine = SigmaEngine([proc_rule(rules)])
    fields = {
        "Channel": "Security",
        "EventID": 4688,
        "NewProcessName": CERTUTIL["Image"],
        "CommandLine": CERTUTIL["CommandLine"],
    }
    assert titles(engine, EventRecord(fields)) == ["Certutil"]
    # In a 4688 event the rule's Image is NewProcessName: an `Image` field is not looked at.
    renamed = {**fields, "Image": fields["NewProcessName"], "NewProcessName": r"C:\x\cmd.exe"}
    assert titles(engine, EventRecord(renamed)) == []


def test_each_rule_reported_once_in_load_order(rules: RuleFactory) -> None:
    first = proc_rule(rules)
    second = rules.compile(
        "sel:\n  CommandLine|contains: urlcache\ncondition: sel",
        logsource="product: windows\ncategory: process_creation",
        title="Second",
    )
    engine = SigmaEngine([second, first])
    record = EventRecord({"Channel": SYSMON, "EventID": 1, **CERTUTIL})
    assert titles(engine, record) == ["Second", "Certutil"]


# --------------------------------------------------------------------------- hints

CLOUDTRAIL = """
selection:
  eventSource: s3.amazonaws.com
  eventName: PutBucketPolicy
condition: selection
"""


def test_unmapped_logsource_reached_through_hint(rules: RuleFactory) -> None:
    rule = rules.compile(CLOUDTRAIL, logsource="product: aws\nservice: cloudtrail", title="S3")
    assert all(v.source is None or not v.source.conditions for v in rule.variants)
    engine = SigmaEngine([rule])
    fields = {"eventSource": "s3.amazonaws.com", "eventName": "PutBucketPolicy"}
    hint = {"product": "aws", "service": "cloudtrail"}
    assert titles(engine, EventRecord(dict(fields), logsource=hint)) == ["S3"]
    loud = {"product": "AWS", "service": "CloudTrail", "region": "eu-west-1"}
    assert titles(engine, EventRecord(dict(fields), logsource=loud)) == ["S3"]
    assert titles(engine, EventRecord(dict(fields))) == []
    assert titles(engine, EventRecord(dict(fields), logsource={"product": "aws"})) == []
    assert titles(engine, EventRecord(dict(fields), logsource={"product": "gcp"})) == []
    benign = {"eventSource": "s3.amazonaws.com", "eventName": "GetObject"}
    assert titles(engine, EventRecord(benign, logsource=hint)) == []


def test_hint_only_source_and_conditions_source(rules: RuleFactory) -> None:
    rule = rules.compile(
        "sel:\n  TargetFilename|endswith: '.secret'\ncondition: sel",
        logsource="product: windows\ncategory: file_access",
        title="FA",
    )
    engine = SigmaEngine([rule])
    fields = {"TargetFilename": r"C:\x\a.SECRET"}
    hint = {"product": "windows", "category": "file_access"}
    assert titles(engine, EventRecord(dict(fields), logsource=hint)) == ["FA"]
    kernel = {"Provider_Name": "Microsoft-Windows-Kernel-File", "EventID": 12, **fields}
    assert titles(engine, EventRecord(kernel)) == ["FA"]
    assert titles(engine, EventRecord(dict(fields))) == []
    assert titles(engine, EventRecord({"TargetFilename": "a.txt"}, logsource=hint)) == []


def test_user_mapping_override(rules: RuleFactory, tmp_path: Path) -> None:
    extra = tmp_path / "mine.yml"
    extra.write_text(
        """
version: 1
logsources:
  acme-vpn:
    logsource: {product: acme, service: vpn}
    sources:
      - conditions: {source: acme-vpn}
        fieldmappings: {User: [user.name, user.alias], SourceIp: client.ip}
""",
        encoding="utf-8",
    )
    text = rule_yaml(
        "sel:\n  User: admin\n  SourceIp|cidr: '203.0.113.0/24'\ncondition: sel",
        logsource="product: acme\nservice: vpn",
        title="VPN admin",
    )
    path = rules.write(text)
    mapped = load_rules([path], mapping=load_mapping([extra]))
    assert not mapped.failures
    engine = SigmaEngine(mapped.rules)
    event = {"source": "acme-vpn", "user.name": "Admin", "client.ip": "203.0.113.9"}
    assert titles(engine, EventRecord(event)) == ["VPN admin"]
    alias = {"source": "acme-vpn", "user.alias": "admin", "client.ip": "203.0.113.9"}
    assert titles(engine, EventRecord(alias)) == ["VPN admin"]
    assert titles(engine, EventRecord({**event, "client.ip": "198.51.100.1"})) == []
    assert titles(engine, EventRecord({**event, "source": "other"})) == []
    # Without the user mapping the same rule is only reachable through a hint.
    plain = load_rules([path], mapping=default_mapping())
    engine = SigmaEngine(plain.rules)
    assert titles(engine, EventRecord(event)) == []
    hinted = EventRecord(
        {"User": "admin", "SourceIp": "203.0.113.1"},
        logsource={"product": "acme", "service": "vpn"},
    )
    assert titles(engine, hinted) == ["VPN admin"]


# --------------------------------------------------------------------------- index soundness

FIELDS = ("Image", "CommandLine", "EventType", "Nested.field")
CHARS = "aAbBé-/ .\\İ"
STRING_MODIFIERS = (
    "",
    "|contains",
    "|startswith",
    "|endswith",
    "|contains|all",
    "|startswith|cased",
    "|neq",
    "|contains|neq",
    "|re",
    "|re|i",
    "|windash|contains",
    "|all",
)
NUMBER_MODIFIERS = ("", "|gt", "|lte", "|neq")

text_st = st.text(alphabet=CHARS, min_size=0, max_size=4)
token_st = st.one_of(text_st, st.sampled_from(["*", "?"]))
pattern_st = st.lists(token_st, min_size=1, max_size=4)


def sigma_text(tokens: list[str]) -> str:
    return "".join(tokens)


def regex_text(tokens: list[str]) -> str:
    out = []
    for tok in tokens:
        if tok == "*":
            out.append(".*")
        elif tok == "?":
            out.append("(a|b)?")
        else:
            out.append(re.escape(tok))
    return "".join(out)


@st.composite
def field_item(draw: st.DrawFn) -> tuple[str, Any, list[list[str]]]:
    if draw(st.integers(0, 5)) == 0:
        mod = draw(st.sampled_from(NUMBER_MODIFIERS))
        numbers = draw(st.lists(st.integers(0, 20), min_size=1, max_size=2))
        return f"EventID{mod}", numbers if len(numbers) > 1 else numbers[0], []
    field = draw(st.sampled_from(FIELDS))
    mod = draw(st.sampled_from(STRING_MODIFIERS))
    patterns = draw(st.lists(pattern_st, min_size=2 if "all" in mod else 1, max_size=3))
    if mod.startswith("|re"):
        values = [regex_text(p) for p in patterns]
    else:
        values = [sigma_text(p) for p in patterns]
    return f"{field}{mod}", values if len(values) > 1 else values[0], patterns


@st.composite
def selection(draw: st.DrawFn) -> tuple[Any, list[list[str]]]:
    kind = draw(st.integers(0, 4))
    if kind == 0:  # keywords
        patterns = draw(st.lists(pattern_st, min_size=1, max_size=2))
        return [sigma_text(p) for p in patterns], patterns
    maps = []
    patterns = []
    for _ in range(2 if kind == 1 else 1):  # kind 1: list of maps (OR)
        items = draw(st.lists(field_item(), min_size=1, max_size=3, unique_by=lambda i: i[0]))
        maps.append({key: value for key, value, _ in items})
        patterns.extend(p for _, _, ps in items for p in ps)
    return (maps if kind == 1 else maps[0]), patterns


@st.composite
def condition(draw: st.DrawFn, names: list[str], depth: int = 0) -> str:
    choice = draw(st.integers(0, 6 if depth < 2 else 1))
    if choice <= 1:
        return draw(st.sampled_from(names))
    if choice == 2:
        return f"not {draw(condition(names, depth + 1))}"
    if choice == 3:
        return draw(st.sampled_from(["1 of sel*", "all of sel*", "1 of them", "all of them"]))
    op = "and" if choice in (4, 5) else "or"
    return f"({draw(condition(names, depth + 1))} {op} {draw(condition(names, depth + 1))})"


@st.composite
def rule_spec(draw: st.DrawFn) -> tuple[dict[str, Any], list[list[str]]]:
    sels = draw(st.lists(selection(), min_size=1, max_size=3))
    names = [f"sel{i}" for i in range(len(sels))]
    detection: dict[str, Any] = dict(zip(names, (s for s, _ in sels), strict=True))
    detection["condition"] = draw(condition(names))
    return detection, [p for _, ps in sels for p in ps]


def realise(tokens: list[str], rnd: random.Random) -> str:
    """A string the pattern would match (wildcards filled), with random case changes."""
    out = []
    for tok in tokens:
        if tok == "*":
            out.append("".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, 3))))
        elif tok == "?":
            out.append(rnd.choice(CHARS))
        else:
            out.append(tok)
    text = "".join(out)
    text = "".join(c.swapcase() if rnd.random() < 0.2 else c for c in text)
    for dash in "-/":
        if rnd.random() < 0.3:
            text = text.replace(dash, rnd.choice(["-", "/", "\u2013", "\u2014", "\u2015"]))
    return text


def make_event(rnd: random.Random, patterns: list[list[str]]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in FIELDS:
        roll = rnd.random()
        if roll < 0.2:
            continue
        if patterns and roll < 0.75:
            value = realise(rnd.choice(patterns), rnd)
            if rnd.random() < 0.4:
                value = realise([rnd.choice(CHARS)], rnd) + value + rnd.choice(CHARS)
        else:
            value = "".join(rnd.choice(CHARS) for _ in range(rnd.randint(0, 6)))
        fields[name] = [value, "zz"] if rnd.random() < 0.15 else value
    if rnd.random() < 0.8:
        fields["EventID"] = rnd.choice([rnd.randint(0, 20), str(rnd.randint(0, 20))])
    if rnd.random() < 0.1:
        fields["Extra"] = None
    return fields


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(specs=st.lists(rule_spec(), min_size=1, max_size=4), seed=st.integers(0, 2**32 - 1))
def test_candidate_index_never_drops_a_match(
    specs: list[tuple[dict[str, Any], list[list[str]]]], seed: int
) -> None:
    rnd = random.Random(seed)
    rules = load_detections([detection for detection, _ in specs])
    engine = SigmaEngine(rules)
    patterns = [p for _, ps in specs for p in ps]
    for _ in range(6):
        fields = make_event(rnd, patterns)
        expected = [r.info.id for r in rules if r.variants[0].node.match(EventContext(fields))]
        got = [
            r.info.id for r in engine.match(EventRecord(fields, logsource={"product": "vigiltest"}))
        ]
        assert got == expected, (fields, [d for d, _ in specs])


@pytest.mark.parametrize(
    ("detection", "fields"),
    [
        # Regex with re.IGNORECASE: 'ſ' (long s) matches 's' but does not lower to it.
        ("sel:\n  F|re|i: 'first'\ncondition: sel", {"F": "firſt"}),
        ("sel:\n  F|re: '(?i)first'\ncondition: sel", {"F": "FIRſT"}),
        ("sel:\n  F|re|i: 'ıx'\ncondition: sel", {"F": "IX"}),
        # The Kelvin sign lowers to 'k': plain (lowered) comparison and index agree.
        ("sel:\n  F|contains: 'k'\ncondition: sel", {"F": "\u212a"}),
    ],
)
def test_index_soundness_unicode_edge_cases(
    rules: RuleFactory, detection: str, fields: dict[str, Any]
) -> None:
    rule = rules.compile(detection)
    assert rules.check(rule, fields) is True  # and the engine agrees (asserted in check)
