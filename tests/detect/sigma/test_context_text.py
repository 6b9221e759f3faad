"""The event text the keyword index scans: lowered exactly as str.lower() lowers, whichever
path (ASCII, Latin-1 byte table, per value) builds it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.detect.sigma.context import SEPARATOR, EventContext
from vigil.detect.sigma.engine import SigmaEngine
from vigil.events.model import EventRecord

from .conftest import RuleFactory, rule_yaml

CASES = [
    {"Image": "C:\\Windows\\CMD.EXE", "EventID": 1, "Pid": None},  # ASCII
    {"Product": "Microsoft® Windows® Operating System", "EventID": 1, "User": "ÉRIC\\ÅSA"},
    {"Description": "ÀÞ×ßÿµ", "X": "ABC"},  # Latin-1 letters, and ones with no case change
    {"Company": "İSTANBUL ΣΟΦΙΑ", "Y": "Ü"},  # beyond Latin-1: lowered value by value
    {"A": "\u212a", "B": "k"},  # KELVIN SIGN lowers to an ASCII "k"
]


@pytest.mark.parametrize("fields", CASES)
def test_string_text_is_the_lowered_join_of_the_string_values(fields: dict[str, object]) -> None:
    strings = [v for v in fields.values() if isinstance(v, str)]
    assert EventContext(fields).string_text() == SEPARATOR.join(strings).lower()
    everything = ["none" if v is None else str(v).lower() for v in fields.values()]
    assert EventContext(fields).text() == SEPARATOR.join(everything)


def test_keyword_rule_finds_upper_case_words_in_latin1_events(tmp_path: Path) -> None:
    rules = RuleFactory(tmp_path).load(
        rule_yaml("keywords:\n    - 'mimikatz'\n    - 'sekurlsa::'\ncondition: keywords")
    )
    assert not rules.failures
    engine = SigmaEngine(rules.rules)
    hint = {"product": "vigiltest"}

    def hits(fields: dict[str, object]) -> bool:
        event = EventRecord(fields=fields, logsource=dict(hint))
        assert bool(engine.match(event)) == bool(engine.match_reference(event))
        return bool(engine.match(event))

    assert hits({"Product": "Microsoft® Windows®", "CommandLine": "MIMIKATZ.exe", "EventID": 1})
    assert hits({"Description": "Société", "CommandLine": "SEKURLSA::logonpasswords"})
    assert not hits({"Product": "Microsoft® Windows®", "CommandLine": "notepad.exe"})
    assert not hits({"Company": "İSTANBUL", "CommandLine": "mimi katz"})
