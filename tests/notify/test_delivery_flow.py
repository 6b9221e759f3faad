"""Circuit breaker, dead letters, manual retry, replay idempotency, escalation targeting,
routing fan-out and tenant isolation of deliveries (SQLite and PostgreSQL, real receivers)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, update

from tests.notify.conftest import NotifyEnv, make_env
from tests.notify.receivers import Receiver
from tests.support.server import free_port
from vigil.bus.models import ConsumerOffset
from vigil.errors import NotFoundError
from vigil.events.envelope import Severity
from vigil.notify import deliveries, service
from vigil.notify.dispatcher import CONSUMER
from vigil.notify.models import CircuitState, DeliveryKind, DeliveryStatus
from vigil.notify.schemas import DeadLetterRetry
from vigil.obs.metrics import NOTIFICATION_DEAD_LETTERS, NOTIFICATIONS
from vigil.store import session_scope


def _circuit(env: NotifyEnv, channel_id: str) -> CircuitState:
    with env.session() as s:
        return service.get_channel(s, channel_id=channel_id).circuit.state


def _attempts(env: NotifyEnv) -> dict[str, int]:
    return {d.id: d.attempts for d in env.deliveries()}


def test_down_receiver_opens_circuit_then_dead_letters_and_manual_retry_delivers(
    db_engine: Engine,
) -> None:
    env = make_env(
        db_engine,
        retry_base_s=1.0,
        retry_cap_s=5.0,
        max_attempts=3,
        circuit_failure_threshold=3,
        circuit_cooldown_s=60.0,
    )
    port = free_port()  # nothing listens here: connection refused
    channel = env.webhook(f"http://127.0.0.1:{port}/hook")
    env.route(channel_ids=[channel.id])
    for _ in range(4):
        env.emit()
    env.dispatch()
    failures_before = NOTIFICATIONS.labels("webhook", "failed")._value.get()

    # Closed circuit: all four are tried; three consecutive failures open it.
    assert env.engine.run_due() == 4
    assert _circuit(env, channel.id) is CircuitState.OPEN
    assert NOTIFICATIONS.labels("webhook", "failed")._value.get() - failures_before == 4
    before = _attempts(env)
    assert set(before.values()) == {1}

    # Open: retries fall due but nothing is claimed and no attempt is spent.
    env.clock.advance(30)
    assert env.engine.run_due() == 0
    assert _attempts(env) == before

    # Cool-down over: exactly one probe goes out; it fails, so the circuit opens again.
    env.clock.advance(30)
    assert env.engine.run_due() == 1
    after_probe = _attempts(env)
    assert sum(after_probe.values()) == sum(before.values()) + 1
    assert _circuit(env, channel.id) is CircuitState.OPEN
    assert env.engine.run_due() == 0

    # Keep probing through cool-downs until every delivery has used its three attempts.
    for _ in range(20):
        env.clock.advance(60)
        env.engine.run_due()
        if all(d.status is DeliveryStatus.DEAD for d in env.deliveries()):
            break
    dead = env.deliveries()
    assert all(d.status is DeliveryStatus.DEAD for d in dead)
    assert all(d.attempts == 3 and len(d.attempt_log) == 3 for d in dead)
    assert all(d.dead_at is not None for d in dead)
    assert all("ConnectError" in (d.last_error or "") for d in dead)
    env.engine.refresh_dead_gauge(force=True)
    assert NOTIFICATION_DEAD_LETTERS._value.get() == 4

    with env.session() as s:
        page = deliveries.list_deliveries(s, status=DeliveryStatus.DEAD)
    assert {d.id for d in page.items} == {d.id for d in dead}

    # The receiver comes back; an operator retries one dead letter, then the rest in bulk.
    with Receiver(port=port) as rx:
        first = dead[0].id
        with env.session() as s:
            retried = deliveries.retry_one(s, delivery_id=first, principal=env.principal())
        assert retried.status is DeliveryStatus.PENDING
        # The circuit is still open: the retried delivery waits for the next probe time.
        assert env.engine.run_due() == 0
        env.clock.advance(60)
        assert env.engine.run_due() == 1
        assert env.delivery(first).status is DeliveryStatus.DELIVERED
        assert _circuit(env, channel.id) is CircuitState.CLOSED
        assert env.delivery(first).attempt_log[-1].number == 4

        with env.session() as s:
            result = deliveries.retry_dead_letters(
                s, selection=DeadLetterRetry(channel_id=channel.id), principal=env.principal()
            )
        assert result.retried == 3
        assert env.engine.run_due() == 3
        assert len(rx.requests) == 4
        assert {r.headers["x-vigil-event-id"] for r in rx.requests} == {d.event_id for d in dead}
    assert all(d.status is DeliveryStatus.DELIVERED for d in env.deliveries())
    env.engine.refresh_dead_gauge(force=True)
    assert NOTIFICATION_DEAD_LETTERS._value.get() == 0


def test_retrying_something_not_dead_is_not_found(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        env.emit()
        env.pump()
    [delivered] = env.deliveries()
    with env.session() as s, pytest.raises(NotFoundError):
        deliveries.retry_one(s, delivery_id=delivered.id, principal=env.principal())


def test_replaying_the_outbox_never_sends_twice(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        for _ in range(3):
            env.emit()
        assert env.pump() == 3
        # Reset the consumer offset: the dispatcher reads everything again.
        with session_scope(env.factory) as s:
            s.execute(
                update(ConsumerOffset).where(ConsumerOffset.name == CONSUMER).values(position=0)
            )
        assert env.dispatch() == 3  # planned again...
        assert env.engine.run_due() == 0  # ...but nothing new was created or sent
        assert len(rx.requests) == 3
    assert len(env.deliveries()) == 3
    with session_scope(env.factory) as s:
        position = s.scalars(
            select(ConsumerOffset.position).where(ConsumerOffset.name == CONSUMER)
        ).one()
    assert position == env.dispatcher.position and position >= 3


def test_escalation_goes_exactly_to_the_named_channels(env: NotifyEnv) -> None:
    with Receiver() as a, Receiver() as b, Receiver() as c:
        ch_a = env.webhook(a.url)
        ch_b = env.webhook(b.url)
        ch_c = env.webhook(c.url)
        # A route that would match everything: ignored for escalations naming channels.
        env.route(channel_ids=[ch_a.id, ch_c.id])
        other_tenant = env.webhook(a.url, tenant="globex")
        env.emit(
            event_type="escalation",
            severity=Severity.CRITICAL,
            details={
                "title": "INC-7 not acknowledged in 15 min",
                "channels": [ch_b.id, ch_b.id, other_tenant.id, "no-such-channel"],
            },
        )
        assert env.pump() == 1
        assert not a.requests and not c.requests
        [req] = b.requests
        assert req.json()["event_type"] == "escalation"
    [delivery] = env.deliveries()
    assert delivery.kind is DeliveryKind.ESCALATION
    assert delivery.channel_id == ch_b.id
    assert env.deliveries(tenant="globex") == []


def test_escalation_without_channels_follows_routes(env: NotifyEnv) -> None:
    with Receiver() as a:
        ch = env.webhook(a.url)
        env.route(channel_ids=[ch.id], event_types=["escalation"])
        env.emit(event_type="escalation", details={"title": "step 2"})
        assert env.pump() == 1
    assert env.deliveries()[0].kind is DeliveryKind.ROUTE


def test_union_of_matching_routes_once_per_channel(env: NotifyEnv) -> None:
    with Receiver() as a, Receiver() as b, Receiver() as c:
        ch_a, ch_b, ch_c = env.webhook(a.url), env.webhook(b.url), env.webhook(c.url)
        env.route(channel_ids=[ch_a.id, ch_b.id], min_severity="high")
        env.route(channel_ids=[ch_b.id], tags=["attack.t1003"])
        env.route(channel_ids=[ch_c.id], event_types=["incident_opened"])
        env.emit(severity=Severity.CRITICAL, details={"title": "x", "tags": ["ATTACK.T1003"]})
        assert env.pump() == 2
        assert len(a.requests) == 1 and len(b.requests) == 1 and not c.requests
        env.emit(severity=Severity.LOW, details={"title": "y", "tags": ["attack.t1003"]})
        env.emit(event_type="incident_opened", severity=Severity.INFO)
        env.emit(severity=Severity.MEDIUM, details={"title": "nothing matches"})
        assert env.pump() == 2
        assert len(a.requests) == 1 and len(b.requests) == 2 and len(c.requests) == 1


def test_disabled_channels_and_routes_receive_nothing(env: NotifyEnv) -> None:
    with Receiver() as a:
        ch = env.webhook(a.url, enabled=False)
        env.route(channel_ids=[ch.id])
        env.emit()
        assert env.pump() == 0
        ch2 = env.webhook(a.url)
        env.route(channel_ids=[ch2.id], enabled=False)
        env.emit()
        assert env.pump() == 0
        assert not a.requests


def test_deliveries_are_tenant_isolated(env: NotifyEnv) -> None:
    with Receiver() as a, Receiver() as b:
        acme = env.webhook(a.url, tenant="acme")
        globex = env.webhook(b.url, tenant="globex")
        env.route(channel_ids=[acme.id], tenant="acme")
        env.route(channel_ids=[globex.id], tenant="globex")
        acme_event = env.emit(tenant="acme")
        env.emit(tenant="globex")
        assert env.pump() == 2
        assert len(a.requests) == 1 and len(b.requests) == 1
        assert a.requests[0].json()["event_id"] == str(acme_event.event_id)
        assert a.requests[0].json()["metadata"]["tenant_id"] == env.tenant("acme")
    [mine] = env.deliveries("acme")
    [theirs] = env.deliveries("globex")
    with env.session("acme") as s:
        with pytest.raises(NotFoundError):
            deliveries.get_delivery(s, delivery_id=theirs.id)
        assert deliveries.list_deliveries(s, event_id=theirs.event_id).items == []
        assert (
            deliveries.retry_dead_letters(
                s, selection=DeadLetterRetry(ids=[theirs.id]), principal=env.principal()
            ).retried
            == 0
        )
    assert mine.id != theirs.id


def test_deleting_a_channel_cancels_its_waiting_deliveries(env: NotifyEnv) -> None:
    channel = env.webhook(f"http://127.0.0.1:{free_port()}/hook")
    env.route(channel_ids=[channel.id])
    env.emit()
    env.pump()
    assert env.deliveries()[0].status is DeliveryStatus.PENDING
    with env.session() as s:
        service.delete_channel(s, channel_id=channel.id, principal=env.principal())
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.CANCELLED
    env.clock.advance(3600)
    assert env.engine.run_due() == 0
