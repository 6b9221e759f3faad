"""Splitting a JSON-lines file for workers: the pieces read back exactly the whole file."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson
import pytest

from vigil.events import read_events
from vigil.events.issues import ReadIssue
from vigil.events.json_reader import read_json_lines_range, split_json_lines
from vigil.events.model import EventRecord


def _write(path: Path, n: int, bad: set[int]) -> None:
    with path.open("wb") as fh:
        for i in range(1, n + 1):
            if i in bad:
                fh.write(b'{"broken": \n')
            else:
                fh.write(orjson.dumps({"n": i, "pad": "x" * (i % 37)}) + b"\n")


def _summary(items: list[EventRecord | ReadIssue]) -> list[tuple[str, object]]:
    return [
        ("event", (r.record_id, r.fields["n"]))
        if isinstance(r, EventRecord)
        else ("issue", r.location)
        for r in items
    ]


@pytest.mark.parametrize("parts", [1, 2, 3, 7, 50])
def test_ranges_cover_the_file_once_with_true_line_numbers(tmp_path: Path, parts: int) -> None:
    path = tmp_path / "events.jsonl"
    _write(path, 400, bad={5, 123, 399})
    ranges = split_json_lines(path, parts)
    assert ranges[0][0] == 0 and ranges[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
    pieces: list[EventRecord | ReadIssue] = []
    for start, end, first in ranges:
        pieces.extend(read_json_lines_range(path, start, end, first))
    whole = list(read_events(path))
    assert _summary(pieces) == _summary(whole)
    assert ("issue", "line 123") in _summary(pieces)
    assert ("event", (400, 400)) in _summary(pieces)


def test_more_parts_than_lines(tmp_path: Path) -> None:
    path = tmp_path / "small.jsonl"
    _write(path, 3, bad=set())
    ranges = split_json_lines(path, 10)
    items = [i for s, e, f in ranges for i in read_json_lines_range(path, s, e, f)]
    assert [r.record_id for r in items if isinstance(r, EventRecord)] == [1, 2, 3]
