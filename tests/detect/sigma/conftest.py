"""Shared helpers for the Sigma engine tests: tiny rules written as YAML strings.

Rules use the unmapped logsource ``product: vigiltest`` so that field names are matched as
written (no field mapping), and events reach them through a logsource hint.
``RuleFactory.check`` evaluates a rule both directly (``variants[0].node.match``) and through
:class:`SigmaEngine` (routing and candidate index) and fails when the two disagree, so every
semantic test also checks that the candidate index keeps the match.
"""

from __future__ import annotations

import itertools
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.detect.sigma.context import EventContext
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import CompiledRule, LoadResult, load_rules
from vigil.detect.sigma.mapping import LogsourceMapping, load_mapping
from vigil.events.model import EventRecord

TEST_LOGSOURCE = {"product": "vigiltest"}
_counter = itertools.count(1)
_mapping: LogsourceMapping | None = None


def default_mapping() -> LogsourceMapping:
    global _mapping
    if _mapping is None:
        _mapping = load_mapping()
    return _mapping


def rule_yaml(
    detection: str,
    *,
    title: str = "Unit test rule",
    rule_id: str | None = None,
    level: str = "medium",
    logsource: str = "product: vigiltest",
) -> str:
    """A complete rule document around ``detection`` (the YAML body under ``detection:``)."""
    rid = rule_id or f"00000000-0000-4000-8000-{next(_counter):012d}"
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    ls = textwrap.indent(textwrap.dedent(logsource).strip("\n"), "    ")
    return (
        f"title: {title}\nid: {rid}\nstatus: test\nlevel: {level}\n"
        f"logsource:\n{ls}\ndetection:\n{body}\n"
    )


class RuleFactory:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def write(self, text: str, name: str | None = None) -> Path:
        path = self.tmp_path / (name or f"rule_{next(_counter)}.yml")
        path.write_text(text, encoding="utf-8")
        return path

    def load(
        self,
        *texts: str,
        placeholders: Mapping[str, Sequence[str]] | None = None,
        mapping: LogsourceMapping | None = None,
    ) -> LoadResult:
        paths = [self.write(t) for t in texts]
        return load_rules(paths, mapping=mapping or default_mapping(), placeholders=placeholders)

    def compile(
        self,
        detection: str,
        *,
        placeholders: Mapping[str, Sequence[str]] | None = None,
        **kwargs: Any,
    ) -> CompiledRule:
        result = self.load(rule_yaml(detection, **kwargs), placeholders=placeholders)
        assert not result.failures, result.failures
        assert len(result.rules) == 1
        return result.rules[0]

    def check(self, rule: CompiledRule, fields: dict[str, Any]) -> bool:
        """Does ``rule`` match ``fields``; asserts that the engine agrees with the rule's node."""
        direct = rule.variants[0].node.match(EventContext(fields))
        via_engine = SigmaEngine([rule]).match(
            EventRecord(fields=fields, logsource=dict(TEST_LOGSOURCE))
        )
        assert bool(via_engine) is direct, (
            f"engine and node disagree on {fields!r}: node={direct}, engine={bool(via_engine)}"
        )
        return direct

    def matches(self, detection: str, fields: dict[str, Any], **kwargs: Any) -> bool:
        return self.check(self.compile(detection, **kwargs), fields)


def load_detections(detections: Sequence[Mapping[str, Any]]) -> list[CompiledRule]:
    """Rules "Random rule 0..n" (logsource ``product: vigiltest``) around these detections."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, detection in enumerate(detections):
            doc = {
                "title": f"Random rule {i}",
                "id": f"00000000-0000-4000-8000-{i:012d}",
                "status": "test",
                "level": "low",
                "logsource": dict(TEST_LOGSOURCE),
                "detection": dict(detection),
            }
            path = Path(tmp) / f"r{i}.yml"
            path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
            paths.append(path)
        result = load_rules(paths, mapping=default_mapping())
    assert not result.failures, result.failures
    return result.rules


@pytest.fixture
def rules(tmp_path: Path) -> RuleFactory:
    return RuleFactory(tmp_path)
