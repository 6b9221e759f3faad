"""How a background loop logs while what it needs is down (the database, Redis).

A worker whose step failed used to log the full traceback and retry every second: with the
database down for ten minutes that was 600 tracebacks per loop, burying the one line that said
what happened. :class:`FailureLog` logs the first failure with its traceback, then one line per
retry with the next delay (doubling from ``base_s`` up to ``cap_s``), and one "recovered" line
when a step succeeds again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable


def _summary(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


class FailureLog:
    """The failure state of one loop (``what`` names it in the log lines)."""

    def __init__(
        self, logger: logging.Logger, what: str, *, base_s: float = 1.0, cap_s: float = 30.0
    ) -> None:
        self.logger = logger
        self.what = what
        self.base_s = base_s
        self.cap_s = cap_s
        #: consecutive failures (0: healthy)
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Log ``exc`` as the policy says; returns how long to wait before the next try."""
        self.failures += 1
        delay = min(self.cap_s, self.base_s * float(1 << min(self.failures - 1, 30)))
        extra = {"worker": self.what, "failures": self.failures, "retry_in_s": delay}
        if self.failures == 1:
            self.logger.error(
                "%s failed; retrying in %.1f s", self.what, delay, exc_info=exc, extra=extra
            )
        else:
            self.logger.warning(
                "%s still failing (%d in a row): %s; retrying in %.1f s",
                self.what,
                self.failures,
                _summary(exc),
                delay,
                extra=extra,
            )
        return delay

    def succeeded(self) -> None:
        if self.failures:
            self.logger.info(
                "%s recovered after %d failures",
                self.what,
                self.failures,
                extra={"worker": self.what, "failures": self.failures},
            )
            self.failures = 0

    def guard(self, step: Callable[[], float]) -> Callable[[], float]:
        """``step`` (a loop step returning its next delay) with failures logged here and
        turned into the back-off delay, so the loop running it never sees them."""

        def run() -> float:
            try:
                delay = step()
            except Exception as exc:
                return self.failed(exc)
            self.succeeded()
            return delay

        return run


__all__ = ["FailureLog"]
