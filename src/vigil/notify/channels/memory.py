"""Test double of a notifier: records what it was asked to send and answers from a script."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from vigil.notify.channels.base import OutgoingMessage, SendResult
from vigil.notify.models import AttemptOutcome, ChannelType

DELIVERED = SendResult(outcome=AttemptOutcome.DELIVERED, status_code=200)


class RecordingNotifier:
    """Answers with the scripted results in order, then with ``default``."""

    def __init__(
        self,
        channel_type: ChannelType = ChannelType.WEBHOOK,
        *,
        script: Iterable[SendResult] = (),
        default: SendResult = DELIVERED,
    ) -> None:
        self.channel_type = channel_type
        self.default = default
        self.sent: list[OutgoingMessage] = []
        self._script: deque[SendResult] = deque(script)
        self._lock = threading.Lock()

    def then(self, *results: SendResult) -> RecordingNotifier:
        with self._lock:
            self._script.extend(results)
        return self

    def send(self, message: OutgoingMessage) -> SendResult:
        with self._lock:
            self.sent.append(message)
            return self._script.popleft() if self._script else self.default
