"""The sender as it runs in `vigil serve`: a loop thread claiming work for a thread pool; plus the
engine's failure modes (crashed sender, notifier bug, unreadable secrets) and metering."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine

from tests.notify.conftest import NotifyEnv, make_env
from tests.notify.receivers import Receiver
from vigil.notify.channels.base import OutgoingMessage, SendResult, failed
from vigil.notify.channels.memory import RecordingNotifier
from vigil.notify.models import AttemptOutcome, ChannelType, DeliveryStatus
from vigil.notify.secretbox import SecretBox
from vigil.notify.workers import SenderWorker


def _wait(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_slow_receiver_does_not_hold_up_other_channels(env: NotifyEnv) -> None:
    gate = threading.Event()
    with Receiver(gate=gate) as slow, Receiver() as fast:
        slow_ch = env.webhook(slow.url)
        fast_ch = env.webhook(fast.url)
        env.route(channel_ids=[slow_ch.id], event_types=["incident_opened"])
        env.route(channel_ids=[fast_ch.id], event_types=["threat_detected"])
        worker = SenderWorker(env.engine, threads=2, poll_interval_s=0.05)
        worker.start()
        try:
            env.emit(event_type="incident_opened")
            env.dispatch()
            worker.wake()
            assert slow.arrived.wait(10)  # the slow send is in flight, holding a thread
            env.emit(event_type="threat_detected")
            env.dispatch()
            worker.wake()
            _wait(
                lambda: (
                    [d.status for d in env.deliveries(channel_id=fast_ch.id)]
                    == [DeliveryStatus.DELIVERED]
                ),
                "the fast channel's delivery",
            )
            # The slow one is still being sent (claimed, not yet answered).
            [pending] = env.deliveries(channel_id=slow_ch.id)
            assert pending.status is DeliveryStatus.SENDING
            assert worker.status()["in_flight"] == 1
            gate.set()
            _wait(
                lambda: env.deliveries(channel_id=slow_ch.id)[0].status is DeliveryStatus.DELIVERED,
                "the slow channel's delivery",
            )
        finally:
            gate.set()
            worker.stop()
    assert worker.status()["running"] is False


def test_a_sender_that_died_mid_send_is_taken_over_after_the_lease(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.dispatch()
        [claim] = env.engine.claim(10)  # ...and the process dies before sending
        assert env.deliveries()[0].status is DeliveryStatus.SENDING
        assert env.engine.claim(10) == []  # leased: nobody else takes it
        env.clock.advance(env.settings.lease_s)
        [again] = env.engine.claim(10)
        assert again.delivery_id == claim.delivery_id and again.attempt == 2
        env.engine.process(again)
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED
    assert len(rx.requests) == 1
    assert [a.number for a in delivery.attempt_log] == [2]


class _Exploding:
    channel_type = ChannelType.WEBHOOK

    def send(self, message: OutgoingMessage) -> SendResult:
        raise RuntimeError("bug in a notifier")


def test_a_notifier_bug_is_a_failed_attempt_not_a_dead_sender(env: NotifyEnv) -> None:
    env.engine.notifiers[ChannelType.WEBHOOK] = _Exploding()
    channel = env.webhook("https://unused.example.com/")
    env.route(channel_ids=[channel.id])
    env.emit()
    assert env.pump() == 1
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.PENDING
    assert "internal error: RuntimeError: bug in a notifier" in (delivery.last_error or "")


def test_unreadable_secrets_dead_letter_with_a_clear_reason(env: NotifyEnv) -> None:
    channel = env.webhook("https://unused.example.com/")
    env.route(channel_ids=[channel.id])
    other_key = SecretBox.generate()
    env.engine._box = lambda: other_key  # e.g. the key file was lost
    env.emit()
    env.pump()
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert "cannot be decrypted" in (delivery.last_error or "")


class _Meter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def add(self, tenant_id: str, metric: str, amount: int = 1, *, dimension: str = "") -> None:
        key = (tenant_id, metric)
        self.counts[key] = self.counts.get(key, 0) + amount

    def check_quota(self, tenant_id: str, metric: str, amount: int = 1) -> None:
        return None


def test_delivered_notifications_are_metered_per_tenant(db_engine: Engine) -> None:
    env = make_env(db_engine)
    meter = _Meter()
    env.engine.meter = meter
    recorder = RecordingNotifier(script=[failed("HTTP 503", status_code=503)])
    env.engine.notifiers[ChannelType.WEBHOOK] = recorder
    acme = env.webhook("https://acme.example.com/")
    globex = env.webhook("https://globex.example.com/", tenant="globex")
    env.route(channel_ids=[acme.id])
    env.route(channel_ids=[globex.id], tenant="globex")
    env.emit()
    env.emit()
    env.emit(tenant="globex")
    env.pump()  # one of acme's attempts fails first
    env.clock.advance(env.settings.retry_cap_s)
    env.engine.run_due()
    assert len(recorder.sent) == 4
    assert meter.counts == {
        (env.tenant("acme"), "notifications"): 2,
        (env.tenant("globex"), "notifications"): 1,
    }
    everything = env.deliveries("acme") + env.deliveries("globex")
    outcomes = [a.outcome for d in everything for a in d.attempt_log]
    assert outcomes.count(AttemptOutcome.FAILED) == 1


def test_one_channels_backlog_cannot_take_every_thread(env: NotifyEnv) -> None:
    gate = threading.Event()
    with Receiver(gate=gate) as slow, Receiver() as fast:
        slow_ch = env.webhook(slow.url)
        fast_ch = env.webhook(fast.url)
        env.route(channel_ids=[slow_ch.id], event_types=["incident_opened"])
        env.route(channel_ids=[fast_ch.id], event_types=["threat_detected"])
        for _ in range(4):  # the slow channel's backlog comes first in the queue
            env.emit(event_type="incident_opened")
        env.emit(event_type="threat_detected")
        env.dispatch()
        worker = SenderWorker(env.engine, threads=2, poll_interval_s=0.05)
        worker.start()
        try:
            _wait(
                lambda: env.deliveries(channel_id=fast_ch.id)[0].status is DeliveryStatus.DELIVERED,
                "the fast channel's delivery behind the slow backlog",
            )
            sending = [
                d
                for d in env.deliveries(channel_id=slow_ch.id)
                if d.status is DeliveryStatus.SENDING
            ]
            assert len(sending) == 1  # at most half the threads per channel
            gate.set()
            _wait(
                lambda: all(d.status is DeliveryStatus.DELIVERED for d in env.deliveries()),
                "the slow backlog once the receiver answers",
            )
        finally:
            gate.set()
            worker.stop()
    assert len(slow.requests) == 4


def test_finished_deliveries_are_purged_after_retention_dead_letters_stay(env: NotifyEnv) -> None:
    with Receiver([410]) as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()  # rejected: dead letter
        env.emit()  # delivered
        env.pump()
    assert sorted(d.status for d in env.deliveries()) == [
        DeliveryStatus.DEAD,
        DeliveryStatus.DELIVERED,
    ]
    day = 86400.0
    assert env.engine.purge_log(30 * day) == 0
    env.clock.advance(31 * day)
    assert env.engine.purge_log(30 * day) == 1
    [left] = env.deliveries()
    assert left.status is DeliveryStatus.DEAD and len(left.attempt_log) == 1
