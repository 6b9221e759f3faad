"""The value readers yield instead of raising when part of an input is unusable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ReadIssue:
    """One problem found while reading an input; reading continues after it.

    ``location`` is human-readable and format-specific: ``"line 12"`` (JSON lines),
    ``"index 3 (line 40)"`` (JSON documents), ``"after EventRecordID 23504"`` or
    ``"chunk at byte 69632"`` (EVTX), ``"file"`` for whole-file problems.
    """

    source_file: str
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.source_file}: {self.location}: {self.message}"
