"""Email over SMTP into a real local aiosmtpd server, and Slack-compatible payloads into a real
local receiver (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.notify.conftest import NotifyEnv, make_env
from tests.notify.receivers import Receiver
from tests.notify.smtp_server import SmtpServer, self_signed_context
from vigil.events.envelope import Severity
from vigil.notify.models import AttemptOutcome, DeliveryStatus

DETAILS = {
    "title": "Mimikatz on WS-7 <script>",
    "alert_id": "a-123",
    "host": "WS-7",
    "user": "CORP\\alice",
    "tags": ["attack.t1003", "attack.credential_access"],
}


def _email_channel(env: NotifyEnv, config: dict[str, Any], **kw: Any) -> str:
    channel = env.channel({"type": "email", "name": "soc mail", "config": config, **kw})
    env.route(channel_ids=[channel.id])
    return channel.id


def test_email_summary_arrives_with_subject_text_and_html(env: NotifyEnv) -> None:
    with SmtpServer() as smtp:
        _email_channel(
            env,
            {
                "to": ["soc@example.com", "oncall@example.com"],
                "cc": ["lead@example.com"],
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from_address": "vigil@example.com",
            },
        )
        event = env.emit(severity=Severity.CRITICAL, details=DETAILS)
        assert env.pump() == 1
        [mail] = smtp.mails
    assert mail.mail_from == "vigil@example.com"
    assert not mail.tls  # security "none": plain SMTP
    assert mail.rcpt_tos == ["soc@example.com", "oncall@example.com", "lead@example.com"]
    msg = mail.message()
    assert msg["Subject"] == "[Vigil] CRITICAL Mimikatz on WS-7 <script>"
    assert msg["To"] == "soc@example.com, oncall@example.com"
    assert msg["Cc"] == "lead@example.com"
    assert msg["X-Vigil-Event-Id"] == str(event.event_id)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and html is not None
    text = plain.get_content()
    assert "Severity:   critical" in text and str(event.event_id) in text
    assert "host: WS-7" in text and "tags: attack.t1003, attack.credential_access" in text
    markup = html.get_content()
    assert "Mimikatz on WS-7 &lt;script&gt;" in markup and "<script>" not in markup
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.attempt_log[0].status_code == 250
    assert "Message accepted" in (delivery.attempt_log[0].reply or "")


def test_email_uses_settings_server_with_starttls_and_login(
    db_engine: Engine, tmp_path: Path
) -> None:
    with SmtpServer(tls_context=self_signed_context(tmp_path), users={"vigil": "s3cret"}) as smtp:
        env = make_env(
            db_engine,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security="starttls",
            smtp_username="vigil",
            smtp_password="s3cret",
            smtp_from="alerts@vigil.example",
        )
        # The channel names recipients only (and accepts the test server's own certificate).
        _email_channel(env, {"to": ["soc@example.com"], "verify_tls": False})
        env.emit()
        assert env.pump() == 1
        [mail] = smtp.mails
    assert mail.tls and mail.user == "vigil"
    assert mail.mail_from == "alerts@vigil.example"


def test_email_with_wrong_password_is_dead_lettered(db_engine: Engine, tmp_path: Path) -> None:
    with SmtpServer(tls_context=self_signed_context(tmp_path), users={"vigil": "s3cret"}) as smtp:
        env = make_env(db_engine)
        _email_channel(
            env,
            {
                "to": ["soc@example.com"],
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "starttls",
                "verify_tls": False,
                "username": "vigil",
                "from_address": "v@example.com",
            },
            secrets={"password": "wrong"},
        )
        env.emit()
        env.pump()
        assert smtp.mails == []
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert delivery.attempt_log[0].status_code == 535
    assert "authentication" in (delivery.last_error or "")


def test_refused_recipients(env: NotifyEnv) -> None:
    with SmtpServer() as smtp:
        smtp.handler.refuse = {"gone@example.com"}
        config = {
            "to": ["soc@example.com", "gone@example.com"],
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from_address": "v@example.com",
        }
        _email_channel(env, config)
        env.emit()
        env.pump()
        [mail] = smtp.mails
        assert mail.rcpt_tos == ["soc@example.com"]
        [partial] = env.deliveries()
        assert partial.status is DeliveryStatus.DELIVERED
        assert "gone@example.com: 550" in (partial.attempt_log[0].error or "")

        env2_config = {**config, "to": ["gone@example.com"]}
        other = env.channel({"type": "email", "name": "all gone", "config": env2_config})
        env.route(channel_ids=[other.id], event_types=["incident_opened"])
        env.emit(event_type="incident_opened")
        env.pump()
    dead = env.deliveries(channel_id=other.id)[0]
    assert dead.status is DeliveryStatus.DEAD
    assert dead.attempt_log[0].status_code == 550


def test_temporary_smtp_failure_is_retried(env: NotifyEnv) -> None:
    with SmtpServer() as smtp:
        smtp.handler.data_replies.append("451 4.3.0 Mailbox busy, try later")
        _email_channel(
            env,
            {
                "to": ["soc@example.com"],
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "none",
                "from_address": "v@example.com",
            },
        )
        env.emit()
        env.pump()
        [delivery] = env.deliveries()
        assert delivery.status is DeliveryStatus.PENDING
        assert delivery.attempt_log[0].outcome is AttemptOutcome.FAILED
        assert delivery.attempt_log[0].status_code == 451
        assert delivery.next_attempt_at is not None
        env.clock.advance(env.settings.retry_base_s)
        assert env.engine.run_due() == 1
        assert len(smtp.mails) == 1
    assert env.deliveries()[0].status is DeliveryStatus.DELIVERED


def test_email_without_any_server_is_rejected_clearly(env: NotifyEnv) -> None:
    _email_channel(env, {"to": ["soc@example.com"]})
    env.emit()
    env.pump()
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.DEAD
    assert "no SMTP server" in (delivery.last_error or "")


def test_slack_payload_shape(env: NotifyEnv) -> None:
    with Receiver() as rx:
        channel = env.channel(
            {
                "type": "slack",
                "name": "soc chat",
                "config": {"username": "Vigil"},
                "secrets": {"url": rx.url},
            }
        )
        env.route(channel_ids=[channel.id])
        event = env.emit(severity=Severity.HIGH, details=DETAILS)
        assert env.pump() == 1
        [req] = rx.requests
    assert req.headers["content-type"] == "application/json"
    assert "x-vigil-signature" not in req.headers
    payload = req.json()
    assert set(payload) == {"text", "blocks", "username"}
    assert payload["username"] == "Vigil"
    # Fallback text (what Mattermost/Rocket.Chat and notifications show), escaped for mrkdwn.
    assert "[HIGH]" in payload["text"]
    assert "Mimikatz on WS-7 &lt;script&gt;" in payload["text"]
    blocks = payload["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "context"]
    assert blocks[0]["text"]["type"] == "plain_text"
    assert "Mimikatz on WS-7 <script>" in blocks[0]["text"]["text"]  # plain_text: no escaping
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert "*Severity:* high" in fields
    assert "*host:* WS-7" in fields
    assert all(f["type"] == "mrkdwn" for f in blocks[1]["fields"])
    assert len(blocks[1]["fields"]) <= 10
    assert str(event.event_id) in blocks[2]["elements"][0]["text"]
    assert channel.secrets_set == ["url"] and "url" not in channel.config


def test_tls_certificates_are_verified_by_default(env: NotifyEnv, tmp_path: Path) -> None:
    with SmtpServer(tls_context=self_signed_context(tmp_path)) as smtp:
        _email_channel(
            env,
            {
                "to": ["soc@example.com"],
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "starttls",
                "from_address": "v@example.com",
            },
        )
        env.emit()
        env.pump()
        assert smtp.mails == []
    [delivery] = env.deliveries()
    assert delivery.status is DeliveryStatus.PENDING  # retried: certificates get fixed
    assert "CERTIFICATE_VERIFY_FAILED" in (delivery.last_error or "")


def test_implicit_tls_smtps(env: NotifyEnv, tmp_path: Path) -> None:
    with SmtpServer(tls_context=self_signed_context(tmp_path), implicit_tls=True) as smtp:
        _email_channel(
            env,
            {
                "to": ["soc@example.com"],
                "host": "127.0.0.1",
                "port": smtp.port,
                "security": "ssl",
                "verify_tls": False,
                "from_address": "v@example.com",
            },
        )
        env.emit()
        assert env.pump() == 1
        [mail] = smtp.mails
    assert mail.tls
    assert env.deliveries()[0].status is DeliveryStatus.DELIVERED
