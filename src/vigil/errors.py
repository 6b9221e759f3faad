"""The root of every error Vigil raises on purpose.

Domains subclass :class:`VigilError`; boundaries (CLI, API) translate them into exit codes or
problem+json in one place.
"""

from __future__ import annotations


class VigilError(Exception):
    """Root of all Vigil errors."""


class ConfigurationError(VigilError):
    """Settings or a configuration file are invalid."""


# --- errors with a meaning at the API boundary --------------------------------------------------
# Domains raise these (or subclasses); vigil.api.problems maps each to one HTTP status and an
# RFC 9457 problem document. Nothing below knows about HTTP.


class NotFoundError(VigilError):
    """The object does not exist, or the caller's tenant cannot see it (never say which)."""


class ConflictError(VigilError):
    """The request conflicts with the current state (duplicate name, stale version)."""


class InvalidTransitionError(ConflictError):
    """A lifecycle change that is not allowed from the object's current state."""


class InvalidInputError(VigilError):
    """Input that passed schema validation but is still wrong; ``field`` is its dotted path."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AuthenticationError(VigilError):
    """No valid credentials (401). The message is safe to show; it never says which part failed."""


class PermissionDeniedError(VigilError):
    """Authenticated, but not allowed (403)."""


class RateLimitedError(VigilError):
    """Too many requests (429); ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: int, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.headers = headers or {}


class QuotaExceededError(VigilError):
    """A tenant quota is used up (429 with a problem type of its own)."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLargeError(VigilError):
    """The request body is over the limit (413)."""


class UnavailableError(VigilError):
    """A dependency (storage, queue) is not usable right now (503); retry later."""

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
