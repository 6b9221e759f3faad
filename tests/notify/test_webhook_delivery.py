"""Webhook delivery end to end through the outbox, against a real local receiver (SQLite and
PostgreSQL): signature, exact body, retries with backoff, Retry-After, permanent failures,
redirects, network policy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from tests.notify.conftest import NotifyEnv, make_env
from tests.notify.receivers import Receiver, Reply
from vigil.bus.models import OutboxEvent
from vigil.notify.models import AttemptOutcome, DeliveryStatus
from vigil.notify.signing import verify_signature
from vigil.store import session_scope


def test_webhook_receives_the_outbox_envelope_signed(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        event = env.emit(details={"title": "Mimikatz on WS-7", "tags": ["attack.t1003"]})
        assert env.pump() == 1

        assert len(rx.requests) == 1
        req = rx.requests[0]
        with session_scope(env.factory) as s:
            stored = s.scalars(
                select(OutboxEvent.body).where(OutboxEvent.event_id == str(event.event_id))
            ).one()
        assert req.body == stored  # byte for byte what the outbox holds
        assert req.headers["content-type"] == "application/json"
        assert req.headers["x-vigil-event-id"] == str(event.event_id)
        assert req.headers["x-vigil-event-type"] == "threat_detected"
        assert channel.signing_secret is not None
        assert verify_signature(channel.signing_secret, req.headers["x-vigil-signature"], req.body)
        signature = req.headers["x-vigil-signature"]
        assert not verify_signature("whsec_wrong-secret-xxxxxxxx", signature, req.body)
        assert not verify_signature(
            channel.signing_secret, req.headers["x-vigil-signature"], req.body + b" "
        )

    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.event_id == str(event.event_id)
    assert [a.status_code for a in delivery.attempt_log] == [200]
    assert delivery.attempt_log[0].outcome is AttemptOutcome.DELIVERED
    assert delivery.attempt_log[0].reply == "ok"


def test_supplied_secret_and_custom_headers_are_used(env: NotifyEnv) -> None:
    secret = "my-own-secret-0123456789"
    with Receiver() as rx:
        channel = env.webhook(
            rx.url, secrets={"signing_secret": secret, "headers": {"Authorization": "Bearer t0k"}}
        )
        assert channel.signing_secret is None  # supplied, so not echoed back
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
        [req] = rx.requests
        assert req.headers["authorization"] == "Bearer t0k"
        assert verify_signature(secret, req.headers["x-vigil-signature"], req.body)


def test_fails_then_succeeds_with_backoff_in_the_log(env: NotifyEnv) -> None:
    with Receiver([500, 503, 502]) as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.dispatch()
        for expected_attempt in range(1, 5):
            assert env.engine.run_due() == 1
            [delivery] = env.deliveries()
            assert delivery.attempts == expected_attempt
            if delivery.status is DeliveryStatus.DELIVERED:
                break
            assert delivery.status is DeliveryStatus.PENDING
            last = delivery.attempt_log[-1]
            assert last.retry_at is not None and delivery.next_attempt_at == last.retry_at
            # Full jitter: the wait lies within [0, base * 2**(n-1)].
            wait = (last.retry_at - last.started_at).total_seconds()
            assert 0 <= wait <= env.settings.retry_base_s * 2 ** (expected_attempt - 1)
            # Not due before its time...
            assert env.engine.run_due() == 0
            # ...and due exactly then.
            env.clock.advance(wait)

    assert delivery.status is DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempt_log] == [500, 503, 502, 200]
    assert [a.outcome for a in delivery.attempt_log] == [AttemptOutcome.FAILED] * 3 + [
        AttemptOutcome.DELIVERED
    ]
    assert [r.headers["x-vigil-delivery-attempt"] for r in rx.requests] == ["1", "2", "3", "4"]
    assert len({r.headers["x-vigil-event-id"] for r in rx.requests}) == 1


def test_retry_after_is_honoured(env: NotifyEnv) -> None:
    with Receiver([Reply(429, {"Retry-After": "45"})]) as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
        [delivery] = env.deliveries()
        first = delivery.attempt_log[0]
        assert first.status_code == 429
        assert first.retry_at == first.started_at + timedelta(seconds=45)
        env.clock.advance(44)
        assert env.engine.run_due() == 0
        env.clock.advance(1)
        assert env.engine.run_due() == 1
        assert env.deliveries()[0].status is DeliveryStatus.DELIVERED


def test_permanent_client_error_dead_letters_at_once(env: NotifyEnv) -> None:
    with Receiver([Reply(410, body=b"gone for good")]) as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.attempts == 1
    assert delivery.attempt_log[0].outcome is AttemptOutcome.REJECTED
    assert delivery.attempt_log[0].reply == "gone for good"
    assert env.deliveries(status=DeliveryStatus.DEAD)[0].id == delivery.id


def test_same_origin_temporary_redirect_is_followed(env: NotifyEnv) -> None:
    with Receiver([Reply(307, {"Location": "/moved"})]) as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
        assert [r.path for r in rx.requests] == ["/hook", "/moved"]
        assert rx.requests[0].body == rx.requests[1].body
    assert env.deliveries()[0].status is DeliveryStatus.DELIVERED


def test_redirect_to_another_host_is_not_followed(env: NotifyEnv) -> None:
    with Receiver() as elsewhere:
        target = f"http://localhost:{elsewhere.port}/steal"
        with Receiver([Reply(308, {"Location": target})]) as rx:
            channel = env.webhook(rx.url)
            env.route(channel_ids=[channel.id])
            env.emit()
            env.pump()
        assert not elsewhere.requests
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert "another origin" in (delivery.last_error or "")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_private_targets_refused_when_the_setting_is_off(db_engine: Engine, host: str) -> None:
    env = make_env(db_engine, allow_private_networks=False)
    with Receiver() as rx:
        channel = env.webhook(f"http://{host}:{rx.port}/hook")
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
        assert not rx.requests
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert "not a public address" in (delivery.last_error or "")


def test_blocked_network_setting_refuses_even_allowed_private_targets(
    db_engine: Engine,
) -> None:
    env = make_env(db_engine, blocked_networks=["127.0.0.0/8"])
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
        assert not rx.requests
    assert "blocked network 127.0.0.0/8" in (env.deliveries()[0].last_error or "")
