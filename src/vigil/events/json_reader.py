"""Stream events out of JSON inputs: JSON lines, JSON arrays and concatenated JSON objects.

Two reading modes:

* **Lines** (``.jsonl``, ``.ndjson``, ``.log``… and ``.json`` files that turn out to be
  line-delimited): one object per line, decoded with ``orjson``. ``record_id`` is the 1-based
  line number; a bad line becomes a :class:`ReadIssue` at that line and the next line is read.
* **Document** (other ``.json`` files): a JSON array of objects, one (pretty-printed) object, or
  several objects one after another, as ``evtx_dump -o json`` and ``jq`` write them.
  ``record_id`` is the 0-based index of the value in the file (array element or top-level
  object). The file is read in 1 MiB blocks and split into top-level values by
  :mod:`vigil.events.json_split`, so memory grows with the largest record, not the file. A value
  that fails to decode is reported and skipped; a structural error that unbalances brackets
  merges the following values into the broken one, which is then reported as one issue (there
  is no reliable resynchronisation point inside arbitrary JSON).

Which mode a ``.json`` file gets is decided from its first lines (see :func:`sniff_lines`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from vigil.events.issues import ReadIssue
from vigil.events.json_split import RECORD_HEADER, split_document
from vigil.events.model import EventRecord
from vigil.events.normalise import normalise

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_BLOCK = 1 << 20
_BLANK = b" \t\r\n"


def read_json(path: Path, *, lines: bool | None = None) -> Iterator[EventRecord | ReadIssue]:
    """Yield the events of a JSON input; ``lines`` forces a mode, None sniffs ``.json`` content.

    Opening errors propagate as ``OSError`` (the caller maps them to ``EventReadError``).
    """
    source = str(path)
    with open(path, "rb", buffering=_BLOCK) as fh:
        head: list[bytes] = []
        first = _next_content_line(fh, head)
        if first is None:
            return
        if first.startswith(_UTF16_BOMS):
            yield ReadIssue(source, "file", "UTF-16 encoded; only UTF-8 JSON is supported")
            return
        if lines is None:
            lines = sniff_lines(first, fh, head)
        if lines:
            yield from _read_lines(source, head, fh)
        else:
            yield from _read_document(source, b"".join(head), fh)


def _next_content_line(fh: IO[bytes], head: list[bytes]) -> bytes | None:
    """Read lines into ``head`` until one has content; return it (BOM removed) or None at EOF."""
    for line in fh:
        if not head and line.startswith(_BOM):
            line = line[len(_BOM) :]
        head.append(line)
        if line.strip():
            return line
    return None


def sniff_lines(first: bytes, fh: IO[bytes], head: list[bytes]) -> bool:
    """Decide whether a ``.json`` input is line-delimited, reading ahead at most one more line.

    An array (``[`` first) is a document. A first line that is a complete object means JSON
    lines. A first line starting ``{`` that does not decode is either the opening of a
    pretty-printed object or a damaged JSON line: the next content line settles it (a complete
    object there means JSON lines with a bad first line).
    """
    text = first.lstrip()
    if text.startswith(b"[") or RECORD_HEADER.fullmatch(text.rstrip()):
        return False  # an array, or evtx_dump's "Record N" + pretty object format
    if not text.startswith(b"{"):
        return True  # not JSON at all: line mode reports each line
    if _is_object(first):
        return True
    second = _next_content_line(fh, head)
    return second is not None and _is_object(second)


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _read_lines(
    source: str, head: list[bytes], rest: Iterable[bytes], first_line: int = 1
) -> Iterator[EventRecord | ReadIssue]:
    loads = orjson.loads
    lineno = first_line - 1
    for chunk in (head, rest):
        for line in chunk:
            lineno += 1
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                if line.strip():  # blank lines are allowed; checked only on the slow path
                    yield ReadIssue(source, f"line {lineno}", f"invalid JSON: {exc}")
                continue
            if isinstance(obj, dict):
                yield normalise(obj, source_file=source, record_id=lineno)
            else:
                yield ReadIssue(source, f"line {lineno}", _not_object(obj))


def _not_object(value: Any) -> str:
    return f"expected a JSON object, got {type(value).__name__}"


def _read_document(source: str, start: bytes, fh: IO[bytes]) -> Iterator[EventRecord | ReadIssue]:
    loads = orjson.loads
    for index, line, value in split_document(_blocks(start, fh)):
        if isinstance(index, str) or value is None:
            yield ReadIssue(source, f"line {line}", str(index))
            continue
        if isinstance(value, bytes):
            try:
                obj = loads(value)
            except orjson.JSONDecodeError as exc:
                location = f"index {index} (line {line})"
                yield ReadIssue(source, location, f"invalid JSON: {exc}: {_preview(value)}")
                continue
        else:
            obj = value
        if isinstance(obj, dict):
            yield normalise(obj, source_file=source, record_id=index)
        else:
            yield ReadIssue(source, f"index {index} (line {line})", _not_object(obj))


def _blocks(start: bytes, fh: IO[bytes]) -> Iterator[bytes]:
    if start:
        yield start
    while block := fh.read(_BLOCK):
        yield block


def _preview(data: bytes, limit: int = 60) -> str:
    return repr(data.strip()[:limit].decode("utf-8", "replace"))


def split_json_lines(path: Path, parts: int) -> list[tuple[int, int, int]]:
    """Cut a JSON-lines file into about ``parts`` byte ranges on line boundaries.

    Returns ``(start, end, first_line_number)`` triples covering the file, so that workers can
    read the pieces independently and still report true line numbers.
    """
    size = path.stat().st_size
    if parts <= 1 or size == 0:
        return [(0, size, 1)]
    step = max(1, size // parts)
    bounds = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            fh.seek(max(i * step, bounds[-1]))
            fh.readline()  # move to the start of the next whole line
            pos = fh.tell()
            if pos >= size or pos <= bounds[-1]:
                continue
            bounds.append(pos)
        bounds.append(size)
        # Line numbers at each boundary: count newlines once, block by block.
        firsts = [1]
        fh.seek(0)
        seen, lines = 0, 0
        for boundary in bounds[1:-1]:
            while seen < boundary:
                block = fh.read(min(1 << 24, boundary - seen))
                if not block:
                    break
                lines += block.count(b"\n")
                seen += len(block)
            firsts.append(lines + 1)
    return [(bounds[i], bounds[i + 1], firsts[i]) for i in range(len(bounds) - 1)]


def read_json_lines_range(
    path: Path, start: int, end: int, first_line: int
) -> Iterator[EventRecord | ReadIssue]:
    """Read the JSON lines of ``path`` that begin in ``[start, end)``.

    The ranges come from :func:`split_json_lines`; line numbers stay those of the whole file.
    """
    source = str(path)
    with path.open("rb") as fh:
        fh.seek(start)

        def lines() -> Iterator[bytes]:
            pos = start
            for line in fh:
                if pos >= end:
                    return
                pos += len(line)
                yield line

        yield from _read_lines(source, [], lines(), first_line)
