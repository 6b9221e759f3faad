"""Wire the notify domain onto a runtime: shared services, workers, health probe.

Called by :func:`vigil.wiring.assemble` for every process role. Every role gets the
:class:`NotifyRuntime` (the API needs the secret box and the notifiers for test sends); roles
"all" and "worker" also get the outbox dispatcher and the sender as loop workers, which work
only while their process leads (:mod:`vigil.notify.workers`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from vigil import __version__
from vigil.bus.leases import Leadership, Leases
from vigil.metering.meter import meter_of
from vigil.notify.channels.base import Notifier
from vigil.notify.channels.email import EmailNotifier
from vigil.notify.channels.netguard import AddressPolicy, guarded_client
from vigil.notify.channels.slack import SlackNotifier
from vigil.notify.channels.webhook import WebhookNotifier
from vigil.notify.circuit import CircuitPolicy, RetryPolicy
from vigil.notify.clock import Clock, utcnow
from vigil.notify.config import NotifySettings
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.models import (
    ChannelType,
    CircuitState,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
)
from vigil.notify.secretbox import SecretBox, box_for
from vigil.notify.sender import DeliveryEngine
from vigil.notify.workers import SenderWorker, led
from vigil.obs.health import Probe, register_probe
from vigil.runtime import LoopWorker
from vigil.store.tenancy import system_session

if TYPE_CHECKING:
    from vigil.runtime import Runtime

log = logging.getLogger("vigil.notify")

NOTIFY_KEY = "notify"
USER_AGENT = f"Vigil/{__version__}"
#: the lease of the one process that dispatches and sends notifications (PostgreSQL)
LEADER_LEASE = "notify-leader"


class _RuntimeMeter:
    """The runtime's meter, looked up at use (metering may be wired after us)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def add(self, tenant_id: str, metric: str, amount: int = 1, *, dimension: str = "") -> None:
        meter_of(self.runtime).add(tenant_id, metric, amount, dimension=dimension)

    def check_quota(self, tenant_id: str, metric: str, amount: int = 1) -> None:
        meter_of(self.runtime).check_quota(tenant_id, metric, amount)


def default_notifiers(settings: NotifySettings, policy: AddressPolicy) -> dict[ChannelType, Any]:
    client = guarded_client(
        policy,
        connect_timeout_s=settings.http_connect_timeout_s,
        timeout_s=settings.http_timeout_s,
        user_agent=USER_AGENT,
    )
    return {
        ChannelType.WEBHOOK: WebhookNotifier(client, policy, max_redirects=settings.max_redirects),
        ChannelType.SLACK: SlackNotifier(client, policy, max_redirects=settings.max_redirects),
        ChannelType.EMAIL: EmailNotifier(settings, policy),
    }


class NotifyRuntime:
    """What the notify domain shares within a process (``runtime.extras["notify"]``)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        notifiers: Mapping[ChannelType, Notifier] | None = None,
    ) -> None:
        settings = runtime.settings.notify
        self.settings = settings
        self.home = runtime.settings.home
        self.policy = AddressPolicy(
            allow_private=settings.allow_private_networks, blocked=settings.blocked_networks
        )
        self.notifiers = (
            dict(notifiers) if notifiers is not None else default_notifiers(settings, self.policy)
        )
        self.sender: SenderWorker | None = None
        self._box: SecretBox | None = None
        self._box_lock = threading.Lock()
        self.engine = DeliveryEngine(
            sessions=runtime.sessions,
            notifiers=self.notifiers,
            box=self.box,
            retry=RetryPolicy(
                base_s=settings.retry_base_s,
                cap_s=settings.retry_cap_s,
                max_attempts=settings.max_attempts,
                retry_after_max_s=settings.retry_after_max_s,
            ),
            circuit=CircuitPolicy(
                threshold=settings.circuit_failure_threshold,
                cooldown_s=settings.circuit_cooldown_s,
            ),
            lease_s=settings.lease_s,
            clock=clock,
            rng=rng,
            meter=_RuntimeMeter(runtime),
        )
        self.dispatcher = Dispatcher(
            sessions=runtime.sessions,
            batch=settings.dispatch_batch,
            poll_interval_s=settings.poll_interval_s,
            clock=clock,
        )

    def wake_sender(self) -> None:
        """New work is due now (a manual retry): cut the sender's sleep short, if it runs here."""
        if self.sender is not None:
            self.sender.wake()

    def box(self) -> SecretBox:
        """The secret box, created on first use (creating the key file if needed)."""
        with self._box_lock:
            if self._box is None:
                self._box = box_for(self.home, self.settings.secret_keys)
            return self._box


def notify_runtime(runtime: Runtime) -> NotifyRuntime:
    found = runtime.extras.get(NOTIFY_KEY)
    if not isinstance(found, NotifyRuntime):
        raise RuntimeError("the notify domain is not wired on this runtime")
    return found


_PROBED_STATUSES = [
    DeliveryStatus.PENDING.value,
    DeliveryStatus.SENDING.value,
    DeliveryStatus.DEAD.value,
]


def _probe(runtime: Runtime) -> dict[str, Any]:
    nr = notify_runtime(runtime)
    session = system_session(runtime.sessions)
    try:
        rows = session.execute(
            select(NotificationDelivery.status, func.count())
            .where(NotificationDelivery.status.in_(_PROBED_STATUSES))
            .group_by(NotificationDelivery.status)
        ).all()
        by_status = {str(status): int(count) for status, count in rows}
        open_circuits = session.scalar(
            select(func.count())
            .select_from(NotificationChannel)
            .where(NotificationChannel.circuit_state != CircuitState.CLOSED.value)
        )
    finally:
        session.close()
    return {
        "ok": True,
        "outbox_lag": nr.dispatcher.lag(),
        "pending": int(by_status.get(DeliveryStatus.PENDING.value, 0)),
        "sending": int(by_status.get(DeliveryStatus.SENDING.value, 0)),
        "dead_letters": int(by_status.get(DeliveryStatus.DEAD.value, 0)),
        "open_circuits": int(open_circuits or 0),
    }


def install(runtime: Runtime, *, role: str) -> None:
    """``role``: "all" (embedded), "api" (no workers) or "worker" (no HTTP)."""
    settings = runtime.settings
    nr = NotifyRuntime(runtime)
    runtime.extras[NOTIFY_KEY] = nr
    register_probe(runtime, Probe("notify", _probe, critical=False))
    if not settings.notify.secret_keys and runtime.engine.dialect.name != "sqlite":
        log.warning(
            "notify: no VIGIL_NOTIFY__SECRET_KEYS set; channel secrets are encrypted with a key "
            "file under VIGIL_HOME, which every process sharing this database must also have"
        )
    if role not in ("all", "worker"):
        return
    leader = Leadership(
        Leases(runtime.engine, ttl_s=settings.notify.leader_lease_s)
        if runtime.engine.dialect.name == "postgresql"
        else None,
        LEADER_LEASE,
    )
    sender = SenderWorker(
        nr.engine,
        threads=settings.notify.sender_threads,
        poll_interval_s=settings.notify.poll_interval_s,
        retention_s=settings.notify.delivery_retention_days * 86400,
        leader=leader,
    )
    nr.dispatcher.on_deliveries = sender.wake
    nr.sender = sender
    runtime.workers.append(LoopWorker("notify-dispatch", led(leader, nr.dispatcher.step)))
    runtime.workers.append(sender)
