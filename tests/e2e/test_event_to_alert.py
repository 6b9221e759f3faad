"""End to end, as a user runs it: `vigil serve` on a loopback port, an event in over HTTP, an
alert out, a signed webhook at a real local receiver and an email at a real local SMTP server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from aiosmtpd.controller import Controller

from tests.notify.receivers import Receiver
from tests.support.identity import Credentials, bootstrap
from tests.support.server import VigilServer, free_port
from vigil.notify.signing import verify_signature

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "examples" / "rules"
SAMPLE = REPO / "examples" / "events" / "sample.jsonl"

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[VigilServer, Credentials]]:
    home = tmp_path / "home"
    creds = bootstrap(home)
    server = VigilServer(home=home, args=["--rules", str(RULES)]).start()
    try:
        yield server, creds
    finally:
        server.stop()


def alerts(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = http.get("/v1/alerts", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_event_in_alert_out_webhook_and_email_delivered(
    platform: tuple[VigilServer, Credentials],
    receiver: Receiver,
    smtp: tuple[Mailbox, int],
) -> None:
    server, creds = platform
    mailbox, smtp_port = smtp
    with server.client(creds.admin_key) as http:
        hook = http.post(
            "/v1/notifications/channels",
            json={"name": "soc-hook", "type": "webhook", "config": {"url": receiver.url}},
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["signing_secret"]
        mail = http.post(
            "/v1/notifications/channels",
            json={
                "name": "soc-mail",
                "type": "email",
                "config": {
                    "to": ["soc@example.test"],
                    "host": "127.0.0.1",
                    "port": smtp_port,
                    "security": "none",
                    "from_address": "vigil@example.test",
                },
            },
        )
        assert mail.status_code == 201, mail.text
        route = http.post(
            "/v1/notifications/routes",
            json={
                "name": "high and up",
                "min_severity": "high",
                "event_types": ["threat_detected"],
                "channel_ids": [hook.json()["id"], mail.json()["id"]],
            },
        )
        assert route.status_code == 201, route.text

        sent = http.post(
            "/v1/events",
            content=SAMPLE.read_bytes(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert sent.status_code == 202, sent.text
        assert sent.json()["accepted"] == len(SAMPLE.read_text().splitlines())

        encoded = wait_for(
            lambda: [a for a in alerts(http) if "Encoded PowerShell" in a["title"]],
            "the encoded-PowerShell alert",
        )
        assert encoded[0]["severity"] == "high"
        assert encoded[0]["status"] == "new"
        assert encoded[0]["entity_fields"]["host"] == "ws042.corp.example"

        # Every accepted event detected (the queue consumer's offset moves in the transaction
        # that writes the alerts): only now is the set of high alerts final.
        wait_for(
            lambda: http.get("/health/deep").json()["checks"]["queue"]["depth"] == 0,
            "the whole batch detected",
        )
        # The webhook: one delivery per threat_detected event of severity >= high, signed.
        high_alerts = [a for a in alerts(http) if a["severity"] in ("high", "critical")]
        wait_for(lambda: len(receiver.requests) >= len(high_alerts), "webhook deliveries")
        bodies = []
        for req in receiver.requests:
            assert verify_signature(secret, req.headers["x-vigil-signature"], req.body)
            assert not verify_signature(secret, req.headers["x-vigil-signature"], req.body + b" ")
            body = req.json()
            assert body["event_type"] == "threat_detected"
            assert body["source"]["service"] == "vigil"
            assert body["metadata"]["tenant_id"] == creds.tenant_id
            bodies.append(body)
        assert {b["details"]["alert_id"] for b in bodies} == {a["id"] for a in high_alerts}

        # The email reached the SMTP server, about the same alerts.
        wait_for(lambda: len(mailbox.messages) >= len(high_alerts), "emails")
        subjects = " | ".join(str(m["Subject"]) for m in mailbox.messages)
        assert "Encoded PowerShell" in subjects
        assert all(m["To"] == "soc@example.test" for m in mailbox.messages)

        # Low alerts were not routed anywhere.
        time.sleep(1.0)
        assert len(receiver.requests) == len(high_alerts)


def test_replaying_the_same_batch_creates_nothing_twice(
    platform: tuple[VigilServer, Credentials],
) -> None:
    server, creds = platform
    records = [
        {
            "event_id": f"7d1f5a8e-0000-4000-8000-{i:012d}",
            "timestamp": "2026-11-21T08:00:00Z",
            "source": {"service": "edr", "instance": "edr-1"},
            "event_type": "threat_detected",
            "severity": "high",
            "details": {"host": "ws1", "process": "mimikatz.exe"},
        }
        for i in range(5)
    ]
    body = b"\n".join(orjson.dumps(r) for r in records)
    headers = {"Content-Type": "application/x-ndjson"}
    with server.client(creds.admin_key) as http:
        first = http.post("/v1/events", content=body, headers=headers).json()
        second = http.post("/v1/events", content=body, headers=headers).json()
    assert first["accepted"] == 5 and first["duplicates"] == 0
    assert second["accepted"] == 0 and second["duplicates"] == 5


def test_v1_needs_credentials_and_errors_are_problems(
    platform: tuple[VigilServer, Credentials],
) -> None:
    server, creds = platform
    with server.client() as anon:
        r = anon.post("/v1/events", json={"a": 1})
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
    with server.client(creds.admin_key) as http:
        bad = http.patch("/v1/alerts/not-a-real-id", json={"status": "exploded"})
        assert bad.status_code in (404, 422)
        assert bad.headers["content-type"] == "application/problem+json"
