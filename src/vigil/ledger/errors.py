"""Errors of the audit ledger; every message says where the problem is."""

from __future__ import annotations

from vigil.errors import InvalidInputError, VigilError


class LedgerError(VigilError):
    """Root of the audit ledger's errors."""


class ProofError(LedgerError, InvalidInputError):
    """A proof cannot be built or is malformed."""


class NoteError(LedgerError):
    """A signed note or checkpoint is malformed or its signature does not verify."""


class SigningKeyError(LedgerError):
    """The checkpoint signing key is missing, unreadable or not the log's active key."""


class InconsistentCheckpointError(LedgerError):
    """Signing would contradict a checkpoint the log already signed: refused."""


class IntegrityError(LedgerError):
    """The stored log does not match what it committed to."""


class ExportError(LedgerError):
    """An export directory or proof bundle is missing parts or malformed."""
