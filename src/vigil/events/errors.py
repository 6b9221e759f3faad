"""Errors the event readers raise on purpose.

Readers *report* problems inside a file (a corrupt record, a truncated chunk) as
:class:`~vigil.events.issues.ReadIssue` values and keep going; only problems that make a whole
input unusable before reading starts (missing file, permission denied, a directory where a file
was expected) are raised, so a caller scanning many files can decide per file.
"""

from __future__ import annotations

from vigil.errors import VigilError


class EventReadError(VigilError):
    """An input cannot be read at all (not found, unreadable, not a regular file)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
