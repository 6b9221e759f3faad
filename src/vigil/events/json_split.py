"""Split a stream of JSON text into its top-level values without loading it whole.

Handles a JSON array of values (each element is one value), a single value, and values written
one after another (``evtx_dump``/``jq`` style), pretty-printed or not, read in blocks. Memory is
bounded by the largest value plus one block.

How it stays fast: the authority is a small scanner that tracks bracket depth outside string
literals, using an anchored regular expression that skips (possessively, so without
backtracking) plain bytes and *complete* string literals and stops at the next bracket or brace.
That costs a few dozen Python-level steps per record. On top of it sits a fast path for
pretty-printed input, the common big-file case: once the scanner has seen how a value's closing
brace is indented (``"\\n}"`` for concatenated objects, ``"\\n  }"`` inside an array), the end
of the next value is guessed with ``bytes.find`` and confirmed by decoding exactly that slice
with ``orjson``. A successful decode proves the guess (a JSON value cannot be a proper prefix of
another), and the decoded object is handed on, so it is not decoded twice. A failed guess just
falls back to the scanner for that value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

_BLANK = b" \t\r\n"
_SEPARATORS = _BLANK + b","
_STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
# A captured quote means a string literal that does not end inside the buffer.
_STRUCTURE = re.compile(rb'(?:[^"{}\[\]]++|' + _STRING + rb")*+[{}\[\]\"]", re.DOTALL)
# Commas matter only between the elements of a top-level array.
_STRUCTURE_OR_COMMA = re.compile(rb'(?:[^"{}\[\],]++|' + _STRING + rb")*+[{}\[\],\"]", re.DOTALL)
RECORD_HEADER = re.compile(rb"(?:Record \d+\s*)+")
_MAX_GAP = 1 << 20
_QUOTE, _LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _COMMA = b'"{}[],'

#: ``(index, line, value)`` for a value: ``value`` is the decoded dict (fast path) or the raw
#: bytes to decode; ``(message, line, None)`` for a problem the splitter found itself.
Piece = tuple[int, int, dict[str, Any] | bytes] | tuple[str, int, None]


def split_document(blocks: Iterable[bytes]) -> Iterator[Piece]:
    """Yield the top-level values of the JSON text in ``blocks`` (see module docstring).

    ``index`` is the 0-based position of the value (array element or top-level value) and
    ``line`` the 1-based line it starts on. Stray text between values and an unclosed array
    are reported as problems; ``Record N`` header lines (``evtx_dump`` output) are skipped. An
    unterminated value at end of input is yielded as bytes so that decoding it reports it.
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    buf = b""
    scan = 0  # where tokenising resumes in buf
    seg_start: int | None = None  # start of the value being collected by the scanner
    gap_start = 0  # end of the last value; text from here to the next value must be blank
    depth = 0
    in_array = False
    closer: bytes | None = None  # learned "\n<indent>}" that ends a value
    index = 0
    line_base = 1  # line number at buf[line_pos]
    line_pos = 0

    def line_at(pos: int) -> int:
        nonlocal line_base, line_pos
        line_base += buf.count(b"\n", line_pos, pos)
        line_pos = pos
        return line_base

    def segment(begin: int, end: int) -> Piece | None:
        nonlocal index
        seg = buf[begin:end]
        stripped = seg.lstrip(_BLANK)
        if not stripped:
            return None
        piece: Piece = (index, line_at(begin + len(seg) - len(stripped)), seg)
        index += 1
        return piece

    def guess(begin: int) -> tuple[dict[str, Any], int] | None:
        """Fast path: decode the object at ``begin`` up to the next learned closer."""
        if closer is None:
            return None
        end = buf.find(closer, begin)
        if end < 0:
            return None
        end += len(closer)
        try:
            obj = loads(memoryview(buf)[begin:end])
        except decode_error:
            return None
        return obj, end

    def learn(close_pos: int) -> bytes | None:
        newline = buf.rfind(b"\n", 0, close_pos)
        if newline < 0 or buf[newline + 1 : close_pos].strip(_BLANK):
            return closer
        return buf[newline:close_pos] + b"}"

    def gap_problem(end: int) -> Piece | None:
        raw = buf[gap_start:end]
        gap = raw.lstrip(_SEPARATORS)
        if not gap or RECORD_HEADER.fullmatch(gap.rstrip(_SEPARATORS)):
            return None
        line = line_at(gap_start + len(raw) - len(gap))
        return (f"unexpected text {_preview(gap)}", line, None)

    for block in _chain_eof(blocks):
        at_eof = block is None
        if block:
            buf += block
        while True:
            pattern = _STRUCTURE_OR_COMMA if in_array and depth == 1 else _STRUCTURE
            match = pattern.match(buf, scan)
            if match is None:
                scan = len(buf)  # nothing structural left in the buffer
                break
            pos = match.end() - 1
            byte = buf[pos]
            if byte == _QUOTE:
                # A string that does not end inside the buffer: wait for the next block. At end
                # of input it is unterminated and nothing after it can be structure.
                scan = len(buf) if at_eof else pos
                break
            scan = pos + 1
            if depth == 0:
                problem = gap_problem(pos)
                if problem is not None:
                    yield problem
                gap_start = pos
                if byte == _LBRACKET:
                    in_array = True
                    depth = 1
                    seg_start = scan
                elif byte == _LBRACE:
                    fast = guess(pos)
                    if fast is not None:
                        yield (index, line_at(pos), fast[0])
                        index += 1
                        gap_start = scan = fast[1]
                    else:
                        seg_start = pos
                        depth = 1
                else:
                    yield (f"unexpected {_preview(buf[pos:scan])}", line_at(pos), None)
                    gap_start = scan
            elif byte == _LBRACE:
                if depth == 1 and in_array:
                    fast = guess(pos)
                    if fast is not None:
                        problem = _stray(buf, seg_start, pos, line_at)
                        if problem is not None:
                            yield problem
                        yield (index, line_at(pos), fast[0])
                        index += 1
                        seg_start = scan = fast[1]
                        continue
                depth += 1
            elif byte == _LBRACKET:
                depth += 1
            elif byte == _COMMA:  # only matched at depth 1 of an array
                assert seg_start is not None
                piece = segment(seg_start, pos)
                if piece is not None:
                    yield piece
                seg_start = scan
            else:
                depth -= 1
                if byte == _RBRACE and depth == (1 if in_array else 0):
                    closer = learn(pos)
                if depth == 0:
                    assert seg_start is not None
                    piece = segment(seg_start, pos if in_array else scan)
                    if piece is not None:
                        yield piece
                    in_array = False
                    seg_start = None
                    gap_start = scan
        if at_eof:
            break
        # Drop what is fully consumed so memory stays bounded by the largest value. Inside a
        # value the gap before it was already checked; between values, junk text is reported
        # once it exceeds a block rather than kept indefinitely.
        if seg_start is not None:
            keep = seg_start
        else:
            if scan - gap_start > _MAX_GAP:
                problem = gap_problem(scan)
                if problem is not None:
                    yield problem
                gap_start = scan
            keep = min(gap_start, scan)
        if keep:
            line_at(keep)
            buf = buf[keep:]
            scan -= keep
            gap_start -= keep
            line_pos -= keep
            if seg_start is not None:
                seg_start -= keep

    if seg_start is not None:
        piece = segment(seg_start, len(buf))
        if piece is not None:
            yield piece
        if in_array:
            yield ("unterminated JSON array at end of file", line_at(len(buf)), None)
    else:
        problem = gap_problem(len(buf))
        if problem is not None:
            yield problem


def _stray(buf: bytes, start: int | None, end: int, line_at: Any) -> Piece | None:
    """Text between an array element's start and its opening brace (normally only blanks)."""
    if start is None:
        return None
    text = buf[start:end].strip(_BLANK)
    if not text:
        return None
    return (f"unexpected text {_preview(text)}", line_at(start), None)


def _preview(data: bytes, limit: int = 60) -> str:
    return repr(data.strip()[:limit].decode("utf-8", "replace"))


def _chain_eof(blocks: Iterable[bytes]) -> Iterator[bytes | None]:
    """The blocks followed by None, so the scanner knows when a lone quote is final."""
    yield from blocks
    yield None
