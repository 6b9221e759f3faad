"""Scanning: events in, detections out — single-event rules, then correlations over them.

The :class:`Scanner` is the pure core (feed it records, it returns detections). :func:`scan_paths`
reads files, optionally with worker processes: the parent compiles the rules once and forks, so
workers share the compiled engine copy-on-write; each worker scans whole files, and the parent
runs the correlation engine over the base detections in the order they arrive (the correlation
engine orders by event time itself).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.detect.correlate import CorrelationEngine, CorrelationHit, RuleRef
from vigil.detect.detection import Detection, EncodedBatch, EventRef, Level
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import CompiledRule
from vigil.events.issues import ReadIssue
from vigil.events.json_reader import read_json_lines_range, split_json_lines
from vigil.events.model import EventRecord
from vigil.events.readers import InputFormat, detect_format, iter_input_files, read_events


@dataclass
class ScanSummary:
    files: int = 0
    events: int = 0
    issues: list[ReadIssue] = field(default_factory=list)
    by_level: Counter[str] = field(default_factory=Counter)
    by_tactic: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)

    def add(self, detection: Detection, count: int = 1) -> None:
        """Count ``count`` detections like ``detection`` (same rule: same level, title, tags)."""
        self.by_level[detection.level or "informational"] += count
        self.by_rule[detection.rule_title] += count
        for tactic in detection.tactics():
            self.by_tactic[tactic] += count

    @property
    def detections(self) -> int:
        return sum(self.by_level.values())

    def merge(self, other: ScanSummary) -> None:
        self.files += other.files
        self.events += other.events
        self.issues.extend(other.issues)
        self.by_level.update(other.by_level)
        self.by_tactic.update(other.by_tactic)
        self.by_rule.update(other.by_rule)


#: Stands in for the event when a decision depends on the rule alone.
_NO_EVENT = EventRecord(fields={})


def _rule_detection(rule: CompiledRule, event: EventRecord) -> Detection:
    info = rule.info
    return Detection(info.id, info.title, info.level, info.tags, event, rule_name=info.name)


def correlation_detection(hit: CorrelationHit) -> Detection:
    """A correlation hit as a detection; its event is the last contributing one."""
    events = [
        EventRef(
            c.event.source_file, c.event.record_id, c.event.timestamp, c.rule.id or c.rule.name
        )
        for c in hit.events
    ]
    last = hit.events[-1].event if hit.events else EventRecord(fields={})
    return Detection(
        rule_id=hit.rule.id,
        rule_title=hit.rule.title,
        level=hit.rule.level,
        tags=tuple(hit.rule.tags),
        rule_name=hit.rule.name,
        event=EventRecord(
            fields=dict(hit.group),
            source_file=last.source_file,
            record_id=last.record_id,
            timestamp=hit.window_end,
        ),
        kind="correlation",
        events=events,
        group=dict(hit.group),
        value=float(hit.value),
    )


class Scanner:
    """Feeds events through the rules and the correlation engine."""

    def __init__(
        self,
        engine: SigmaEngine,
        correlations: CorrelationEngine | None = None,
        *,
        min_level: Level = Level.INFORMATIONAL,
        suppressed: frozenset[str] = frozenset(),
    ) -> None:
        self.engine = engine
        self.correlations = correlations
        self.min_level = min_level
        #: ids/names of base rules whose own detections are not output (`generate: false`)
        self.suppressed = suppressed
        #: id(rule) -> whether its detections are output (the engine keeps its rules alive)
        self._rule_outputs: dict[int, bool] = {}

    def _keep(self, detection: Detection) -> bool:
        return detection.level_rank >= self.min_level

    def rule_outputs(self, rule: CompiledRule) -> bool:
        """:meth:`outputs` for every detection of ``rule`` (it depends on the rule alone)."""
        known = self._rule_outputs.get(id(rule))
        if known is None:
            known = self._rule_outputs[id(rule)] = self.outputs(_rule_detection(rule, _NO_EVENT))
        return known

    def base_detections(self, event: EventRecord) -> list[Detection]:
        return [_rule_detection(r, event) for r in self.engine.match(event)]

    def outputs(self, base: Detection) -> bool:
        """Whether a base detection is output (level high enough, not `generate: false`)."""
        suppressed = (base.rule_id or "").lower() in self.suppressed or (
            base.rule_name is not None and base.rule_name in self.suppressed
        )
        return not suppressed and self._keep(base)

    def correlate_only(self, base: Detection) -> list[Detection]:
        """Feed one base detection to the correlations; return the correlation detections."""
        if self.correlations is None:
            return []
        ref = RuleRef(id=base.rule_id, name=base.rule_name, title=base.rule_title)
        hits = self.correlations.observe(ref, base.event)
        return [d for d in map(correlation_detection, hits) if self._keep(d)]

    def correlate(self, base: Detection) -> list[Detection]:
        """Feed one base detection to the correlations; return what to output for it."""
        out = self.correlate_only(base)
        if self.outputs(base):
            out.insert(0, base)
        return out

    def process(self, event: EventRecord) -> list[Detection]:
        out: list[Detection] = []
        for base in self.base_detections(event):
            out.extend(self.correlate(base))
        return out

    def finish(self) -> list[Detection]:
        if self.correlations is None:
            return []
        dets = [correlation_detection(h) for h in self.correlations.flush()]
        return [d for d in dets if self._keep(d)]


# --------------------------------------------------------------------------- files

ProgressFn = Callable[[int], None]

# Set in the parent before forking workers; workers read them (copy-on-write, never pickled).
_WORKER_SCANNER: Scanner | None = None
_WORKER_CORRELATED: frozenset[int] = frozenset()  # id() of rules the correlations reference


#: A JSON-lines file larger than this is split between workers (EVTX and JSON documents are not).
SPLIT_BYTES = 4 << 20

#: (path, start, end, first line); start == end == -1 means "the whole file".
Task = tuple[Path, int, int, int]


def _tasks(files: list[Path], workers: int) -> list[Task]:
    tasks: list[Task] = []
    for path in files:
        size = _size(path)
        if size > SPLIT_BYTES and detect_format(path) is InputFormat.JSON_LINES:
            parts = min(workers * 4, max(2, size // SPLIT_BYTES))
            tasks.extend((path, s, e, first) for s, e, first in split_json_lines(path, parts))
        else:
            tasks.append((path, -1, -1, 1))
    return tasks


def _scan_task(task: Task) -> tuple[EncodedBatch, list[Detection], ScanSummary]:
    """One file or range in a worker: output lines encoded here, counted here; only the base
    detections that correlations need travel back as objects (with their events)."""
    scanner = _WORKER_SCANNER
    assert scanner is not None
    engine = scanner.engine
    path, start, end, first = task
    summary = ScanSummary(files=1 if start <= 0 else 0)
    lines: list[bytes] = []
    correlated: list[Detection] = []
    dumps = orjson.dumps
    option = orjson.OPT_NON_STR_KEYS
    items = read_events(path) if start < 0 else read_json_lines_range(path, start, end, first)
    for item in items:
        if isinstance(item, ReadIssue):
            summary.issues.append(item)
            continue
        summary.events += 1
        for rule in engine.match(item):
            det = _rule_detection(rule, item)
            if scanner.outputs(det):
                lines.append(dumps(det.to_dict(), default=str, option=option))
                summary.add(det)
            if id(rule) in _WORKER_CORRELATED:
                correlated.append(det)
    batch = EncodedBatch(b"\n".join(lines) + b"\n" if lines else b"", len(lines))
    return batch, correlated, summary


def scan_paths(
    paths: Sequence[Path],
    scanner: Scanner,
    summary: ScanSummary,
    *,
    workers: int = 1,
    progress: ProgressFn | None = None,
) -> Iterator[Detection | EncodedBatch]:
    """Scan every input file under ``paths``; yields detections, fills ``summary``.

    With workers, base detections arrive as :class:`EncodedBatch` (already JSON); correlation
    detections always arrive as :class:`Detection`.
    """
    files = list(iter_input_files(paths))
    if workers <= 1:
        yield from _scan_serial(files, scanner, summary, progress)
    else:
        yield from _scan_parallel(files, scanner, summary, workers, progress)
    for det in scanner.finish():
        summary.add(det)
        yield det


def _scan_serial(
    files: Iterable[Path], scanner: Scanner, summary: ScanSummary, progress: ProgressFn | None
) -> Iterator[Detection]:
    if scanner.correlations is None:
        yield from _scan_serial_uncorrelated(files, scanner, summary, progress)
        return
    for path in files:
        summary.files += 1
        for item in read_events(path):
            if isinstance(item, ReadIssue):
                summary.issues.append(item)
                continue
            summary.events += 1
            for det in scanner.process(item):
                summary.add(det)
                yield det
        if progress is not None:
            progress(_size(path))


def _scan_serial_uncorrelated(
    files: Iterable[Path], scanner: Scanner, summary: ScanSummary, progress: ProgressFn | None
) -> Iterator[Detection]:
    """:func:`_scan_serial` without correlations: ``scanner.process`` reduced to what it does
    then (a detection per matching rule whose detections are output), with the per-rule
    decision remembered; most events match nothing, so their cost is reading plus ``match``."""
    match = scanner.engine.match
    outputs = scanner.rule_outputs
    # Detections are tallied per rule and added to the summary once per rule (a detection's
    # level, title and tactics are its rule's): three Counter updates per detection were ~5 %
    # of a detection-heavy scan.
    tally: dict[int, list[Any]] = {}  # id(rule) -> [count, a detection of it]
    try:
        for path in files:
            summary.files += 1
            for item in read_events(path):
                if item.__class__ is not EventRecord and isinstance(item, ReadIssue):
                    summary.issues.append(item)
                    continue
                summary.events += 1
                rules = match(item)
                if rules:
                    for rule in rules:
                        if outputs(rule):
                            det = _rule_detection(rule, item)
                            seen = tally.get(id(rule))
                            if seen is None:
                                tally[id(rule)] = [1, det]
                            else:
                                seen[0] += 1
                            yield det
            if progress is not None:
                progress(_size(path))
    finally:  # also when the consumer stops early: what was yielded is counted
        for count, det in tally.values():
            summary.add(det, count)


def _scan_parallel(
    files: list[Path],
    scanner: Scanner,
    summary: ScanSummary,
    workers: int,
    progress: ProgressFn | None,
) -> Iterator[Detection | EncodedBatch]:
    global _WORKER_SCANNER, _WORKER_CORRELATED
    _WORKER_SCANNER = scanner
    corr = scanner.correlations
    _WORKER_CORRELATED = frozenset(
        id(rule)
        for rule in scanner.engine.rules
        if corr is not None
        and corr.wants(RuleRef(id=rule.info.id, name=rule.info.name, title=rule.info.title))
    )
    ctx = multiprocessing.get_context("fork")
    tasks = _tasks(files, workers)
    with ctx.Pool(processes=min(workers, len(tasks))) as pool:
        # imap keeps task order, so the output order does not depend on scheduling.
        for task, (batch, correlated, part) in zip(
            tasks, pool.imap(_scan_task, tasks), strict=True
        ):
            summary.merge(part)
            if batch.count:
                yield batch
            for base in correlated:
                for det in scanner.correlate_only(base):
                    summary.add(det)
                    yield det
            if progress is not None:
                path, start, end, _ = task
                progress(_size(path) if start < 0 else end - start)
    _WORKER_SCANNER = None


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def total_size(paths: Sequence[Path]) -> int:
    return sum(_size(p) for p in iter_input_files(paths))
