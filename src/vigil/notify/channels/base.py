"""The notifier interface every channel type implements, and what it is given and returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from vigil.events.envelope import SecurityEvent
from vigil.notify.models import AttemptOutcome, ChannelType

#: Longest error / reply text kept in the delivery log.
MAX_DETAIL_CHARS = 1000


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One attempt to deliver one event to one channel."""

    delivery_id: str
    attempt: int
    event: SecurityEvent
    #: The envelope JSON exactly as on the outbox: what a webhook posts and signs.
    body: bytes
    channel_id: str
    channel_name: str
    config: Mapping[str, Any]
    secrets: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: AttemptOutcome
    status_code: int | None = None
    #: The receiver's answer (an SMTP reply, a short HTTP body excerpt).
    reply: str | None = None
    error: str | None = None
    #: The receiver asked to wait this long (HTTP Retry-After).
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is AttemptOutcome.DELIVERED


def clip(text: str | None, limit: int = MAX_DETAIL_CHARS) -> str | None:
    if text is None:
        return None
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failed(error: str, **kw: Any) -> SendResult:
    return SendResult(outcome=AttemptOutcome.FAILED, error=clip(error), **kw)


def rejected(error: str, **kw: Any) -> SendResult:
    return SendResult(outcome=AttemptOutcome.REJECTED, error=clip(error), **kw)


class Notifier(Protocol):
    """Sends one message; never raises for delivery problems (they are a :class:`SendResult`).

    Called from sender threads with no database transaction open; must be thread-safe.
    """

    channel_type: ChannelType

    def send(self, message: OutgoingMessage) -> SendResult: ...
