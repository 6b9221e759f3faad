"""Stream events out of Windows ``.evtx`` files with the ``evtx`` (pyevtx-rs) package.

Damage handling, learned from how ``evtx`` 0.14 behaves:

* A bad record makes the records iterator raise ``RuntimeError``; calling ``next`` again carries
  on with the following record (or the next chunk). We turn each raise into a
  :class:`ReadIssue` and keep iterating, with a cap on consecutive failures so a parser stuck
  on the same error cannot loop for ever.
* A file cut short inside a chunk is skipped by ``evtx`` *silently* (the partial chunk yields
  nothing). We compare the file size with the chunk layout ourselves, report the truncation and,
  to recover the records before the cut, feed the parser a view of the file zero-padded to a
  whole chunk. The record the cut runs through would come out as its template with empty
  values, so we find it from the record headers in the partial chunk and report it instead.
* A file cut at a chunk boundary parses cleanly; the header's chunk count exposes it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from evtx import PyEvtxParser

from vigil.events.issues import ReadIssue
from vigil.events.model import EventRecord
from vigil.events.normalise import normalise

EVTX_MAGIC = b"ElfFile\x00"
_CHUNK_SIZE = 0x10000
_CHUNK_HEADER_SIZE = 512
_RECORD_MAGIC = b"**\x00\x00"
_RECORD_HEADER_SIZE = 24
_FILE_HEADER_MIN = 128  # the meaningful part of the 4096-byte header block
#: After this many failures in a row without a good record, stop reading the file.
MAX_CONSECUTIVE_ERRORS = 1000


def read_evtx(path: Path, *, threads: int = 1) -> Iterator[EventRecord | ReadIssue]:
    """Yield every readable record of an EVTX file as an EventRecord, problems as ReadIssues.

    ``record_id`` is the event's ``EventRecordID`` (the Sigma field; exported logs keep the
    original numbering there) and falls back to the record header's id when absent.
    ``threads`` is passed to the parser; 1 keeps to one core, 0 lets ``evtx`` use them all.
    Opening errors (missing file, permissions) propagate as ``OSError``; the caller in
    :mod:`vigil.events.readers` turns them into ``EventReadError`` before iteration starts.
    """
    source = str(path)
    with open(path, "rb") as fh:
        header = fh.read(_FILE_HEADER_MIN)
        if len(header) < _FILE_HEADER_MIN or not header.startswith(EVTX_MAGIC):
            yield ReadIssue(source, "file", "not an EVTX file (missing ElfFile header)")
            return
        header_size, declared_chunks = struct.unpack_from("<HH", header, 40)
        file_size = fh.seek(0, io.SEEK_END)
        full_chunks, partial = divmod(max(file_size - header_size, 0), _CHUNK_SIZE)

        trailing: ReadIssue | None = None
        parser_input: Any = source
        cut: frozenset[int] = frozenset()
        if partial:
            offset = header_size + full_chunks * _CHUNK_SIZE
            trailing = ReadIssue(
                source,
                f"chunk at byte {offset}",
                f"file truncated: last chunk has {partial} of {_CHUNK_SIZE} bytes; "
                "records before the cut were recovered where possible",
            )
            parser_input = _ZeroPaddedFile(fh, file_size, offset + _CHUNK_SIZE)
            fh.seek(offset)
            cut = _cut_record_ids(fh.read(partial))
        elif declared_chunks > full_chunks:
            trailing = ReadIssue(
                source,
                f"byte {file_size}",
                f"file truncated: header declares {declared_chunks} chunks, "
                f"file holds {full_chunks}",
            )
        yield from _iter_records(parser_input, source, threads, cut)
        if trailing is not None:
            yield trailing


def _iter_records(
    parser_input: Any, source: str, threads: int, cut: frozenset[int]
) -> Iterator[EventRecord | ReadIssue]:
    try:
        records = PyEvtxParser(parser_input, number_of_threads=threads).records_json()
    except Exception as exc:  # the native parser raises OSError/RuntimeError/ValueError
        yield ReadIssue(source, "file", f"cannot parse EVTX: {exc}")
        return
    loads = orjson.loads
    last_id: int | None = None
    failures = 0
    while True:
        try:
            raw = next(records)
        except StopIteration:
            return
        except Exception as exc:  # a damaged record or chunk; the iterator can go on
            yield ReadIssue(source, _after(last_id), str(exc))
            failures += 1
            if failures >= MAX_CONSECUTIVE_ERRORS:
                yield ReadIssue(
                    source, _after(last_id), f"giving up after {failures} consecutive errors"
                )
                return
            continue
        failures = 0
        if not isinstance(raw, dict):
            yield ReadIssue(source, _after(last_id), "evtx returned no record")
            continue
        header_id = raw.get("event_record_id")
        if header_id in cut:
            # Parsed from zero padding: the template renders, the values are gone.
            yield ReadIssue(source, f"record {header_id}", "record cut short by truncation")
            continue
        try:
            obj = loads(raw["data"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            yield ReadIssue(source, f"record {header_id}", f"bad JSON from evtx: {exc}")
            continue
        if not isinstance(obj, dict):
            yield ReadIssue(source, f"record {header_id}", "evtx returned a non-object")
            continue
        record = normalise(obj, source_file=source)
        event_record_id = record.fields.get("EventRecordID")
        record.record_id = event_record_id if isinstance(event_record_id, int) else header_id
        last_id = record.record_id
        yield record


def _cut_record_ids(partial_chunk: bytes) -> frozenset[int]:
    """Header ids of records in a truncated chunk that run past the end of the data.

    Records start after the 512-byte chunk header and are laid out back to back, each with the
    magic ``**\0\0``, its size (u32) and its record id (u64).
    """
    cut: set[int] = set()
    pos = _CHUNK_HEADER_SIZE
    while pos + _RECORD_HEADER_SIZE <= len(partial_chunk):
        if not partial_chunk.startswith(_RECORD_MAGIC, pos):
            break
        size, record_id = struct.unpack_from("<IQ", partial_chunk, pos + 4)
        if size < _RECORD_HEADER_SIZE:
            break
        if pos + size > len(partial_chunk):
            cut.add(record_id)
            break
        pos += size
    return frozenset(cut)


def _after(last_id: int | None) -> str:
    return "before the first record" if last_id is None else f"after EventRecordID {last_id}"


class _ZeroPaddedFile(io.RawIOBase):
    """A read-only view of ``fh`` extended with zero bytes up to ``padded_size``.

    Lets ``evtx`` parse the surviving part of a chunk that was cut short, without loading the
    file into memory.
    """

    def __init__(self, fh: BinaryIO, real_size: int, padded_size: int) -> None:
        super().__init__()
        self._fh = fh
        self._real_size = real_size
        self._size = padded_size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        got = 0
        if self._pos < self._real_size:
            self._fh.seek(self._pos)
            data = self._fh.read(min(want, self._real_size - self._pos))
            got = len(data)
            view[:got] = data
        if got < want:
            view[got:want] = bytes(want - got)
        self._pos += want
        return want
