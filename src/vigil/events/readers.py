"""Entry points for reading event files: format detection, path expansion, streaming reads.

Every reader is a generator of ``EventRecord | ReadIssue``: records stream one at a time
(memory is bounded by the largest record, not the file) and damage inside a file is reported
as a :class:`ReadIssue` while reading carries on. Only a file that cannot be opened at all
raises :class:`EventReadError`, and :func:`read_events` does that *eagerly*, before the first
``next()``, so callers get the error where they asked for the file.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from vigil.events.errors import EventReadError
from vigil.events.evtx_reader import EVTX_MAGIC, read_evtx
from vigil.events.issues import ReadIssue
from vigil.events.json_reader import read_json
from vigil.events.model import EventRecord

#: Extensions :func:`iter_input_files` picks up inside directories (case-insensitive).
INPUT_SUFFIXES = frozenset({".evtx", ".json", ".jsonl", ".ndjson", ".log"})

StrPath = str | os.PathLike[str]


class InputFormat(enum.Enum):
    """How a file is read."""

    EVTX = "evtx"
    #: A ``.json`` file: array, object(s), or JSON lines, decided from its content.
    JSON = "json"
    #: One JSON object per line.
    JSON_LINES = "jsonl"


def detect_format(path: StrPath) -> InputFormat:
    """Pick the reader: EVTX by magic bytes or extension, ``.json`` sniffed, else JSON lines.

    Raises :class:`EventReadError` if the file cannot be opened.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(EVTX_MAGIC))
    except OSError as exc:
        raise EventReadError(str(path), _reason(exc)) from exc
    suffix = path.suffix.lower()
    if magic == EVTX_MAGIC or suffix == ".evtx":
        return InputFormat.EVTX
    if suffix == ".json":
        return InputFormat.JSON
    return InputFormat.JSON_LINES


def read_events(
    path: StrPath, *, fmt: InputFormat | None = None, evtx_threads: int = 1
) -> Iterator[EventRecord | ReadIssue]:
    """Stream the events of one file, with problems inside it yielded as ReadIssues.

    ``fmt`` overrides detection. ``evtx_threads`` is handed to the EVTX parser (1 = stay on one
    core; 0 = let it use all cores).
    Raises :class:`EventReadError` at call time if the file is missing, unreadable or a
    directory.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise EventReadError(str(path), what)
    if fmt is None:
        fmt = detect_format(path)
    else:
        _check_readable(path)
    if fmt is InputFormat.EVTX:
        return _guard(path, read_evtx(path, threads=evtx_threads))
    return _guard(path, read_json(path, lines=True if fmt is InputFormat.JSON_LINES else None))


def read_paths(
    paths: Iterable[StrPath], *, evtx_threads: int = 1
) -> Iterator[EventRecord | ReadIssue]:
    """Stream the events of every input file under ``paths`` (see :func:`iter_input_files`).

    A file that cannot be opened is reported as a ReadIssue and the next file is read, since
    one bad file should not end a batch; a *named* path that does not exist still raises
    :class:`EventReadError`, because that is a usage mistake.
    """
    for file in iter_input_files(paths):
        try:
            events = read_events(file, evtx_threads=evtx_threads)
        except EventReadError as exc:
            yield ReadIssue(str(file), "file", exc.message)
            continue
        yield from events


def iter_input_files(paths: Iterable[StrPath]) -> Iterator[Path]:
    """Expand files and directories into the input files to read, deterministically.

    A named file is yielded as given, whatever its extension. A directory is walked
    recursively (symlinked directories are not followed, to avoid loops) and its files with an
    extension in :data:`INPUT_SUFFIXES` are yielded sorted by their path relative to it.
    Arguments keep their order. Raises :class:`EventReadError` for a path that does not exist.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk(path)
        elif path.exists():
            yield path
        else:
            raise EventReadError(str(path), "no such file or directory")


def _walk(root: Path) -> Iterator[Path]:
    found: list[tuple[tuple[str, ...], Path]] = []
    for dirpath, _dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames:
            if os.path.splitext(name)[1].lower() in INPUT_SUFFIXES:
                file = base / name
                found.append((file.relative_to(root).parts, file))
    found.sort(key=lambda item: item[0])
    for _key, file in found:
        yield file


def _check_readable(path: Path) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise EventReadError(str(path), _reason(exc)) from exc


def _guard(
    path: Path, events: Iterator[EventRecord | ReadIssue]
) -> Iterator[EventRecord | ReadIssue]:
    """Turn an I/O failure in the middle of a file (e.g. a vanished network share) into an issue."""
    try:
        yield from events
    except OSError as exc:
        yield ReadIssue(str(path), "file", f"read failed: {_reason(exc)}")


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)
