"""The notifier's loop workers in `vigil serve` (role "all") and `vigil worker`.

* ``notify-dispatch``: a :class:`~vigil.runtime.LoopWorker` over
  :meth:`vigil.notify.dispatcher.Dispatcher.step` (:func:`led`).

Both run only in the *leader*, one process of the deployment at a time
(:class:`vigil.bus.leases.Leadership`, lease ``notify-leader`` on PostgreSQL): every worker
process used to poll the outbox and the deliveries (about a tenth of a detection worker's CPU
each) only for all but one to find nothing. The others look again every third of the lease time
and take over when the leader's lease expires (it died or froze). A leader frozen in the middle
of a send finishes it when it wakes, as after any take-over: deliveries are claimed with leases
of their own (:mod:`vigil.notify.sender`), so a delivery whose claim expired may be sent twice;
its delivery id (signed, in every request) lets the receiver drop the repeat.
* ``notify-send`` (:class:`SenderWorker`): claims due deliveries on its loop thread and sends
  them on a small thread pool. It claims only as many as it has free threads, and at most about
  half of them for any one channel, so neither a slow receiver nor one channel's backlog holds up
  the loop, the dispatcher or the other channels. It also refreshes the dead-letter gauge and
  purges the delivery log past its retention.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from vigil.bus.leases import Leadership
from vigil.notify.models import DeliveryStatus
from vigil.notify.sender import Claim, DeliveryEngine
from vigil.obs.failures import FailureLog
from vigil.runtime import LoopWorker

log = logging.getLogger("vigil.notify.workers")

PURGE_INTERVAL_S = 3600.0


class SenderWorker(LoopWorker):
    def __init__(
        self,
        engine: DeliveryEngine,
        *,
        threads: int,
        poll_interval_s: float,
        retention_s: float | None = None,
        leader: Leadership | None = None,
    ) -> None:
        super().__init__("notify-send", FailureLog(log, "notify-send").guard(self._step))
        self.leader = leader
        self.engine = engine
        self.threads = threads
        self.per_channel = max(1, (threads + 1) // 2)
        self.poll_interval_s = poll_interval_s
        self.retention_s = retention_s
        self._pool: ThreadPoolExecutor | None = None
        self._busy: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._purged_at = 0.0

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vigil-notify-send")
        super().start()

    def _step(self) -> float:
        if self.leader is not None and not self.leader.is_leader():
            return self.leader.check_interval_s
        self.engine.refresh_dead_gauge()
        self._maybe_purge()
        with self._lock:
            free = self.threads - sum(self._busy.values())
            busy = dict(self._busy)
        if free <= 0 or self._pool is None:
            return self.poll_interval_s
        claims = self.engine.claim(free, busy=busy, per_channel=self.per_channel)
        for claim in claims:
            with self._lock:
                self._busy[claim.channel_id] += 1
            future = self._pool.submit(self.engine.process, claim)
            future.add_done_callback(functools.partial(self._done, claim))
        return 0.0 if claims and len(claims) == free else self.poll_interval_s

    def _done(self, claim: Claim, future: Future[DeliveryStatus]) -> None:
        with self._lock:
            self._busy[claim.channel_id] -= 1
            if self._busy[claim.channel_id] <= 0:
                del self._busy[claim.channel_id]
        exc = future.exception()
        if exc is not None:
            # Recording failed (storage down): the lease expires and the delivery is retried.
            log.error("recording a delivery failed", exc_info=exc)
        self.wake()

    def _maybe_purge(self) -> None:
        if self.retention_s is None or time.monotonic() - self._purged_at < PURGE_INTERVAL_S:
            return
        self._purged_at = time.monotonic()
        removed = self.engine.purge_log(self.retention_s)
        if removed:
            log.info("delivery log purged", extra={"deliveries": removed})

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.leader is not None:
            self.leader.resign()  # after the last send: the next leader starts at once

    def status(self) -> dict[str, Any]:
        out = super().status()
        with self._lock:
            out["in_flight"] = sum(self._busy.values())
        out["leader"] = self.leader is None or self.leader.held
        return out


def led(leader: Leadership, step: Callable[[], float]) -> Callable[[], float]:
    """``step`` in the leader only; elsewhere look again when leadership may have changed."""

    def run() -> float:
        if not leader.is_leader():
            return leader.check_interval_s
        return step()

    return FailureLog(log, "notify-dispatch").guard(run)
