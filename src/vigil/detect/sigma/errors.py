"""Errors raised by the Sigma detection package."""

from __future__ import annotations

from pathlib import Path

from vigil.errors import VigilError


class MappingError(VigilError):
    """A logsource mapping file is invalid.

    ``errors`` lists every problem found (each prefixed with the file path and, where there is
    one, the entry name); ``str(error)`` joins them into one message.
    """

    def __init__(self, errors: list[str] | tuple[str, ...], paths: tuple[Path, ...] = ()) -> None:
        self.errors: tuple[str, ...] = tuple(errors)
        self.paths: tuple[Path, ...] = paths
        count = len(self.errors)
        head = f"invalid logsource mapping ({count} error{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {e}" for e in self.errors)]))


class SigmaEngineError(VigilError):
    """Root of the rule engine's errors."""


class CompileError(SigmaEngineError):
    """A rule (or one of its values) cannot be compiled.

    Raised without location; the loader records it as a ``RuleFailure`` with the file and rule id.
    """
