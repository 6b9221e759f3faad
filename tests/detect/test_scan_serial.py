"""scan_paths without correlations takes a shorter way than Scanner.process: same detections
(rule, event, order), same summary, min-level and suppressed rules honoured, bad lines counted."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vigil.detect.detection import Detection, Level
from vigil.detect.scan import Scanner, ScanSummary, scan_paths
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import load_rules
from vigil.detect.sigma.mapping import load_mapping
from vigil.events.issues import ReadIssue
from vigil.events.readers import read_events

RULE = """title: {title}
id: 00000000-0000-4000-8000-00000000000{n}
status: test
level: {level}
tags: [attack.execution, attack.t1059]
logsource:
    product: vigiltest
detection:
    sel:
        CommandLine|contains: '{needle}'
    condition: sel
"""


@pytest.fixture()
def engine(tmp_path: Path) -> SigmaEngine:
    rules = [("Low rule", "low", "whoami"), ("High rule", "high", "whoami"), ("Other", "high", "x")]
    paths = []
    for n, (title, level, needle) in enumerate(rules, 1):
        path = tmp_path / f"r{n}.yml"
        path.write_text(RULE.format(title=title, n=n, level=level, needle=needle))
        paths.append(path)
    result = load_rules(paths, mapping=load_mapping())
    assert not result.failures
    return SigmaEngine(result.rules)


@pytest.fixture()
def events_file(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"CommandLine": "cmd /c WHOAMI", "logsource": {"product": "vigiltest"}}),
        "{broken",
        json.dumps({"CommandLine": "benign", "logsource": {"product": "vigiltest"}}),
        json.dumps({"CommandLine": "whoami x", "logsource": {"product": "vigiltest"}}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def via_process(scanner: Scanner, path: Path) -> list[Detection]:
    out = []
    for item in read_events(path):
        if not isinstance(item, ReadIssue):
            out.extend(scanner.process(item))
    return out


def key(det: Detection) -> tuple[str, int | None]:
    return det.rule_title, det.event.record_id


@pytest.mark.parametrize(
    ("min_level", "suppressed", "expected"),
    [
        (
            Level.INFORMATIONAL,
            frozenset(),
            ["Low rule", "High rule", "Low rule", "High rule", "Other"],
        ),
        (Level.HIGH, frozenset(), ["High rule", "High rule", "Other"]),
        (
            Level.INFORMATIONAL,
            frozenset({"00000000-0000-4000-8000-000000000002"}),
            ["Low rule", "Low rule", "Other"],
        ),
    ],
)
def test_uncorrelated_scan_equals_process(
    engine: SigmaEngine,
    events_file: Path,
    min_level: Level,
    suppressed: frozenset[str],
    expected: list[str],
) -> None:
    scanner = Scanner(engine, min_level=min_level, suppressed=suppressed)
    summary = ScanSummary()
    got = list(scan_paths([events_file], scanner, summary))
    assert all(isinstance(d, Detection) for d in got)
    dets = [d for d in got if isinstance(d, Detection)]
    assert [d.rule_title for d in dets] == expected
    assert [key(d) for d in dets] == [key(d) for d in via_process(scanner, events_file)]
    assert summary.events == 3 and summary.files == 1
    assert len(summary.issues) == 1 and summary.issues[0].location == "line 2"
    assert summary.detections == len(expected)
    assert summary.by_tactic["execution"] == len(expected)
    assert "t1059" not in summary.by_tactic
    assert summary.by_rule == {t: expected.count(t) for t in set(expected)}
    levels = {"Low rule": "low", "High rule": "high", "Other": "high"}
    assert summary.by_level == Counter(levels[t] for t in expected)


def test_summary_counts_what_was_yielded_when_the_consumer_stops_early(
    engine: SigmaEngine, events_file: Path
) -> None:
    summary = ScanSummary()
    scan = scan_paths([events_file], Scanner(engine), summary)
    first = [next(scan) for _ in range(3)]
    scan.close()  # the consumer stops: the per-rule tally is still added to the summary
    assert [d.rule_title for d in first] == ["Low rule", "High rule", "Low rule"]
    assert summary.by_rule == {"Low rule": 2, "High rule": 1}
    assert summary.detections == 3
    assert summary.by_tactic == {"execution": 3}
