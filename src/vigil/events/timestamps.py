"""Lenient timestamp parsing: every timestamp becomes a timezone-aware UTC datetime or None.

Event sources disagree on formats (RFC 3339 with ``Z``, Sysmon's naive ``2025-10-24 23:41:00.589``,
epoch seconds, epoch milliseconds as numbers or strings). A bad or missing timestamp must never
stop an event from being read, so nothing here raises.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# Magnitude cut-offs that tell epoch units apart. 1e11 seconds is the year 5138, so anything
# bigger is taken as milliseconds; likewise for micro- and nanoseconds.
_MILLIS_FROM = 1e11
_MICROS_FROM = 1e14
_NANOS_FROM = 1e17


def parse_timestamp(value: Any) -> datetime | None:
    """Parse an ISO 8601 / RFC 3339 string or an epoch number (s/ms/µs/ns) to aware UTC.

    Naive values are taken as UTC (Windows and Sysmon write UTC without a zone marker).
    Returns None for anything unparseable, including booleans and out-of-range numbers.
    """
    if isinstance(value, str):
        return _parse_text(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    return None


def _from_epoch(number: float) -> datetime | None:
    if not math.isfinite(number):
        return None
    magnitude = abs(number)
    if magnitude >= _NANOS_FROM:
        number /= 1e9
    elif magnitude >= _MICROS_FROM:
        number /= 1e6
    elif magnitude >= _MILLIS_FROM:
        number /= 1e3
    try:
        return datetime.fromtimestamp(number, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_text(text: str) -> datetime | None:
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = _parse_text_slow(text)
        if parsed is None:
            return None
    tz = parsed.tzinfo
    if tz is None:
        return parsed.replace(tzinfo=UTC)
    if tz is UTC:  # RFC 3339 "Z", the common case: already what astimezone would return
        return parsed
    return parsed.astimezone(UTC)


def _parse_text_slow(text: str) -> datetime | None:
    """The rarer spellings: surrounding blanks, lowercase ``t``/``z``, a ``UTC`` suffix, epochs."""
    text = text.strip()
    if not text:
        return None
    first = text[0]
    if first.isdigit() or first in "+-.":
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
    if text.endswith(" UTC"):
        text = text[:-4]
    try:
        return datetime.fromisoformat(text.upper())
    except ValueError:
        return None
