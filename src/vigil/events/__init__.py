"""Event readers and normalisers: files in, :class:`EventRecord` values with Sigma fields out.

Pure Python plus ``evtx``/``orjson``; no web, database or queue imports, so the detection engine
and the CLI can use it anywhere.
"""

from vigil.events.errors import EventReadError
from vigil.events.issues import ReadIssue
from vigil.events.model import EventRecord
from vigil.events.normalise import flatten_json, flatten_windows_event, normalise
from vigil.events.readers import (
    INPUT_SUFFIXES,
    InputFormat,
    detect_format,
    iter_input_files,
    read_events,
    read_paths,
)
from vigil.events.timestamps import parse_timestamp

__all__ = [
    "INPUT_SUFFIXES",
    "EventReadError",
    "EventRecord",
    "InputFormat",
    "ReadIssue",
    "detect_format",
    "flatten_json",
    "flatten_windows_event",
    "iter_input_files",
    "normalise",
    "parse_timestamp",
    "read_events",
    "read_paths",
]
