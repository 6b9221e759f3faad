"""Channel and route management (service level, SQLite and PostgreSQL): validation, write-only
secrets encrypted at rest, rotation, audit entries, tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from tests.notify.conftest import NotifyEnv
from tests.notify.receivers import Receiver
from vigil.errors import ConflictError, InvalidInputError, NotFoundError
from vigil.events.envelope import Severity
from vigil.ledger import service as ledger
from vigil.notify import service
from vigil.notify.models import DeliveryKind, DeliveryStatus, NotificationChannel
from vigil.notify.schemas import ChannelUpdate, RouteUpdate, SecretRotate
from vigil.notify.signing import verify_signature
from vigil.store import session_scope


def _audit_actions(env: NotifyEnv, tenant: str = "acme") -> list[dict[str, Any]]:
    with session_scope(env.factory) as s:
        page = ledger.list_entries(s, tenant=env.tenant(tenant), limit=1000)
    return [{"action": e.action, "target": e.target} for e in page.items]


def test_secrets_are_write_only_and_encrypted_at_rest(env: NotifyEnv) -> None:
    created = env.channel(
        {
            "type": "email",
            "name": "soc mail",
            "config": {"to": ["soc@example.com"], "host": "smtp.example.com", "username": "u"},
            "secrets": {"password": "hunter2-very-secret"},
        }
    )
    slack = env.channel(
        {
            "type": "slack",
            "name": "chat",
            "secrets": {"url": "https://hooks.slack.com/services/T0/B0/XYZSECRETTOKEN"},
        }
    )
    hook = env.webhook(
        "https://receiver.example.com/hook",
        secrets={"headers": {"Authorization": "Bearer HEADERSECRET"}},
    )
    assert hook.signing_secret and hook.signing_secret.startswith("whsec_")
    assert created.secrets_set == ["password"]
    assert slack.secrets_set == ["url"]
    assert hook.secrets_set == ["headers", "signing_secret"]

    with env.session() as s:
        listed = orjson.dumps([c.model_dump(mode="json") for c in service.list_channels(s)])
        one = orjson.dumps(service.get_channel(s, channel_id=hook.id).model_dump(mode="json"))
        raw = s.scalars(select(NotificationChannel.secrets)).all()
    for secret in ("hunter2-very-secret", "XYZSECRETTOKEN", "HEADERSECRET", hook.signing_secret):
        assert secret.encode() not in listed
        assert secret.encode() not in one
        assert all(secret.encode() not in blob for blob in raw)  # ciphertext only
    assert env.box.open(raw[0])  # decrypts with the runtime's key


def test_validation_names_the_field(env: NotifyEnv) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"type": "webhook", "name": "x", "config": {"url": "http://169.254.169.254/latest"}},
            "body.config.url",
        ),
        ({"type": "slack", "name": "x", "secrets": {}}, "body.secrets.url"),
    ]
    for data, field in cases:
        with pytest.raises(InvalidInputError) as info:
            env.channel(data)
        assert info.value.field == field
    channel = env.webhook("https://ok.example.com/h")
    with env.session() as s, pytest.raises(InvalidInputError) as info:
        service.update_channel(
            s,
            channel_id=channel.id,
            data=ChannelUpdate(config={"url": "ftp://nope"}),
            principal=env.principal(),
            box=env.box,
        )
    assert info.value.field == "body.config.url"
    with env.session() as s, pytest.raises(InvalidInputError) as info:
        service.update_channel(
            s,
            channel_id=channel.id,
            data=ChannelUpdate(secrets={"signing_secret": "x" * 30}),
            principal=env.principal(),
            box=env.box,
        )
    assert info.value.field == "body.secrets.signing_secret"


def test_names_are_unique_per_tenant(env: NotifyEnv) -> None:
    env.webhook("https://a.example.com/", name="pager")
    with pytest.raises(ConflictError):
        env.webhook("https://b.example.com/", name="pager")
    env.webhook("https://b.example.com/", name="pager", tenant="globex")  # another tenant: fine


def test_update_keeps_untouched_fields_and_merges_secrets(env: NotifyEnv) -> None:
    email = env.channel(
        {
            "type": "email",
            "name": "mail",
            "config": {"to": ["a@example.com"]},
            "secrets": {"password": "p1"},
        }
    )
    with env.session() as s:
        out = service.update_channel(
            s,
            channel_id=email.id,
            data=ChannelUpdate(enabled=False, description="night shift"),
            principal=env.principal(),
            box=env.box,
        )
    assert not out.enabled and out.description == "night shift"
    assert out.config["to"] == ["a@example.com"] and out.secrets_set == ["password"]
    with env.session() as s:
        out = service.update_channel(
            s,
            channel_id=email.id,
            data=ChannelUpdate(secrets={"password": None}),
            principal=env.principal(),
            box=env.box,
        )
    assert out.secrets_set == []


def test_rotation_with_grace_signs_with_both_secrets(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.webhook(rx.url)
        env.route(channel_ids=[channel.id])
        old = channel.signing_secret
        assert old
        with env.session() as s:
            rotated = service.rotate_secret(
                s,
                channel_id=channel.id,
                data=SecretRotate(grace_s=3600),
                principal=env.principal(),
                box=env.box,
            )
        new = rotated.signing_secret
        assert new and new != old and rotated.previous_valid_until is not None
        env.emit()
        env.pump()
        header = rx.requests[-1].headers["x-vigil-signature"]
        assert verify_signature(new, header, rx.requests[-1].body)
        assert verify_signature(old, header, rx.requests[-1].body)

        # Immediate rotation to a supplied secret: only the new one signs.
        supplied = "a-secret-the-receiver-chose-1"
        with env.session() as s:
            rotated = service.rotate_secret(
                s,
                channel_id=channel.id,
                data=SecretRotate(signing_secret=supplied),
                principal=env.principal(),
                box=env.box,
            )
        assert rotated.signing_secret is None and rotated.previous_valid_until is None
        env.emit()
        env.pump()
        header = rx.requests[-1].headers["x-vigil-signature"]
        assert verify_signature(supplied, header, rx.requests[-1].body)
        assert not verify_signature(new, header, rx.requests[-1].body)
        assert not verify_signature(old, header, rx.requests[-1].body)


def test_every_change_is_in_the_audit_ledger(env: NotifyEnv) -> None:
    channel = env.webhook("https://a.example.com/h")
    route = env.route(channel_ids=[channel.id])
    p = env.principal()
    with env.session() as s:
        service.update_channel(
            s, channel_id=channel.id, data=ChannelUpdate(enabled=False), principal=p, box=env.box
        )
        service.rotate_secret(
            s, channel_id=channel.id, data=SecretRotate(), principal=p, box=env.box
        )
        service.update_route(
            s, route_id=route.id, data=RouteUpdate(min_severity=Severity.CRITICAL), principal=p
        )
        service.reset_circuit(s, channel_id=channel.id, principal=p)
        service.delete_route(s, route_id=route.id, principal=p)
        service.delete_channel(s, channel_id=channel.id, principal=p)
    entries = _audit_actions(env)
    assert [e["action"] for e in entries] == [
        "notify.channel.create",
        "notify.route.create",
        "notify.channel.update",
        "notify.channel.rotate_secret",
        "notify.route.update",
        "notify.channel.reset_circuit",
        "notify.route.delete",
        "notify.channel.delete",
    ]
    assert entries[0]["target"] == f"channel:{channel.id}"
    assert entries[1]["target"] == f"route:{route.id}"
    assert _audit_actions(env, "globex") == []


def test_failed_change_leaves_no_audit_entry(env: NotifyEnv) -> None:
    env.webhook("https://a.example.com/h", name="dup")
    with pytest.raises(ConflictError):
        env.webhook("https://a.example.com/h", name="dup")
    assert [e["action"] for e in _audit_actions(env)] == ["notify.channel.create"]


def test_channels_and_routes_are_tenant_isolated(env: NotifyEnv) -> None:
    theirs = env.webhook("https://globex.example.com/h", tenant="globex")
    their_route = env.route(channel_ids=[theirs.id], tenant="globex")
    mine = env.webhook("https://acme.example.com/h")
    p = env.principal("acme")
    with env.session("acme") as s:
        assert [c.id for c in service.list_channels(s)] == [mine.id]
        assert service.list_routes(s) == []
        with pytest.raises(NotFoundError):
            service.get_channel(s, channel_id=theirs.id)
        with pytest.raises(NotFoundError):
            service.update_channel(
                s, channel_id=theirs.id, data=ChannelUpdate(enabled=False), principal=p, box=env.box
            )
        with pytest.raises(NotFoundError):
            service.delete_channel(s, channel_id=theirs.id, principal=p)
        with pytest.raises(NotFoundError):
            service.rotate_secret(
                s, channel_id=theirs.id, data=SecretRotate(), principal=p, box=env.box
            )
        with pytest.raises(NotFoundError):
            service.get_route(s, route_id=their_route.id)
        with pytest.raises(NotFoundError):
            service.delete_route(s, route_id=their_route.id, principal=p)
    # A route cannot point at another tenant's channel.
    with pytest.raises(InvalidInputError) as info:
        env.route(channel_ids=[mine.id, theirs.id])
    assert info.value.field == "body.channel_ids[1]"
    with env.session("globex") as s:
        assert service.get_channel(s, channel_id=theirs.id).enabled


def test_routes_normalise_and_follow_channel_deletion(env: NotifyEnv) -> None:
    a = env.webhook("https://a.example.com/h")
    b = env.webhook("https://b.example.com/h")
    route = env.route(
        channel_ids=[a.id, b.id, a.id], tags=["Attack.T1003", "attack.t1003"], min_severity="high"
    )
    assert sorted(route.channel_ids) == sorted([a.id, b.id])
    assert route.tags == ["attack.t1003"]
    with env.session() as s:
        service.delete_channel(s, channel_id=a.id, principal=env.principal())
        assert service.get_route(s, route_id=route.id).channel_ids == [b.id]


def test_test_send_logs_a_test_delivery(env: NotifyEnv) -> None:
    with Receiver([500]) as rx:
        channel = env.webhook(rx.url)
        with env.session() as s:
            failed = env.engine.send_test(s, channel_id=channel.id, principal=env.principal())
        assert failed.kind is DeliveryKind.TEST and failed.status is DeliveryStatus.FAILED
        assert failed.attempt_log[0].status_code == 500
        with env.session() as s:
            ok = env.engine.send_test(s, channel_id=channel.id, principal=env.principal())
        assert ok.status is DeliveryStatus.DELIVERED
        body = rx.requests[-1].json()
        assert body["event_type"] == "notification_test"
        assert body["details"]["channel_id"] == channel.id
        assert channel.signing_secret
        assert verify_signature(
            channel.signing_secret,
            rx.requests[-1].headers["x-vigil-signature"],
            rx.requests[-1].body,
            tolerance_s=60,
            now=time.time(),
        )
    # Test sends are never retried and leave the circuit alone.
    env.clock.advance(3600)
    assert env.engine.run_due() == 0
    with env.session() as s:
        assert service.get_channel(s, channel_id=channel.id).circuit.consecutive_failures == 0
    assert "notify.channel.test" in [e["action"] for e in _audit_actions(env)]
