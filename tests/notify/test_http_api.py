"""The notifications API on the real server (`vigil serve` on a loopback port, API keys made by
the real CLI): CRUD, write-only secrets, permissions, tenant isolation (404), test sends, the
delivery log with filters and cursors, dead letters with manual and bulk retry, and events the
server's own workers take from the outbox to real receivers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.notify.receivers import Receiver
from tests.notify.smtp_server import SmtpServer
from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer, free_port
from vigil.bus import outbox
from vigil.events.envelope import SecurityEvent, Severity, vigil_event
from vigil.notify.signing import verify_signature
from vigil.store import create_engine_for, session_factory, session_scope

T = TypeVar("T")

SERVER_ENV = {
    "VIGIL_NOTIFY__RETRY_BASE_S": "0.05",
    "VIGIL_NOTIFY__RETRY_CAP_S": "0.2",
    "VIGIL_NOTIFY__MAX_ATTEMPTS": "2",
    "VIGIL_NOTIFY__POLL_INTERVAL_S": "0.1",
    "VIGIL_NOTIFY__CIRCUIT_FAILURE_THRESHOLD": "1000",
}


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("notify-home")


@pytest.fixture(scope="module")
def acme(home: Path) -> Credentials:
    return bootstrap(home, tenant="acme")


@pytest.fixture(scope="module")
def globex(home: Path, acme: Credentials) -> Credentials:
    return bootstrap(home, tenant="globex")


@pytest.fixture(scope="module")
def server(home: Path, acme: Credentials, globex: Credentials) -> Iterator[VigilServer]:
    srv = VigilServer(home, env=SERVER_ENV).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def http(server: VigilServer, acme: Credentials) -> Iterator[httpx.Client]:
    with server.client(acme.admin_key) as client:
        yield client


@pytest.fixture
def produce(home: Path) -> Iterator[Callable[..., SecurityEvent]]:
    """Emit a security event on the server's outbox, as alerts and incidents do."""
    engine = create_engine_for(f"sqlite:///{home / 'vigil.db'}")
    factory = session_factory(engine)

    def emit(tenant_id: str, **kw: Any) -> SecurityEvent:
        event = vigil_event(
            tenant_id=tenant_id,
            event_type=kw.pop("event_type", "threat_detected"),
            severity=kw.pop("severity", Severity.HIGH),
            details=kw.pop("details", {"title": "Encoded PowerShell on ws042"}),
        )
        with session_scope(factory) as s:
            outbox.emit(s, tenant_id=tenant_id, event=event)
        return event

    yield emit
    engine.dispose()


def _hook(http: httpx.Client, url: str, name: str, **kw: Any) -> dict[str, Any]:
    r = http.post(
        "/v1/notifications/channels",
        json={"type": "webhook", "name": name, "config": {"url": url}, **kw},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def _deliveries(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = http.get("/v1/notifications/deliveries", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_channel_crud_and_secrets_never_returned(http: httpx.Client) -> None:
    created = _hook(
        http,
        "https://receiver.example.com/hook",
        "crud-hook",
        secrets={"headers": {"Authorization": "Bearer H3ADER"}},
    )
    secret = created["signing_secret"]
    assert secret.startswith("whsec_")
    assert created["secrets_set"] == ["headers", "signing_secret"]
    cid = created["id"]

    for r in (
        http.get("/v1/notifications/channels"),
        http.get(f"/v1/notifications/channels/{cid}"),
        http.patch(f"/v1/notifications/channels/{cid}", json={"description": "night shift"}),
    ):
        assert r.status_code == 200, r.text
        assert secret not in r.text and "H3ADER" not in r.text and 'signing_secret":' not in r.text
    one = http.get(f"/v1/notifications/channels/{cid}").json()
    assert one["description"] == "night shift"
    assert one["circuit"]["state"] == "closed"

    rotated = http.post(f"/v1/notifications/channels/{cid}/rotate-secret", json={"grace_s": 60})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["signing_secret"] not in (None, secret)
    assert rotated.json()["previous_valid_until"]
    assert (
        rotated.json()["signing_secret"] not in http.get(f"/v1/notifications/channels/{cid}").text
    )

    assert http.delete(f"/v1/notifications/channels/{cid}").status_code == 204
    gone = http.get(f"/v1/notifications/channels/{cid}")
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "webhook", "name": "x", "config": {"url": "ftp://x"}}, "body.webhook.config.url"),
        (
            {"type": "webhook", "name": "x", "config": {"url": "http://169.254.169.254/"}},
            "body.config.url",
        ),
        ({"type": "slack", "name": "x", "secrets": {}}, "body.secrets.url"),
        ({"type": "pager", "name": "x", "config": {}}, "body"),
        (
            {"type": "email", "name": "x", "config": {"to": ["not-an-address"]}},
            "body.email.config.to",
        ),
    ],
)
def test_bad_channels_are_422_problems_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    r = http.post("/v1/notifications/channels", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    fields = [e["field"] for e in problem.get("errors", [])] + [problem.get("field")]
    assert any(f and f.startswith(field) for f in fields), problem


def test_permissions(server: VigilServer, home: Path, acme: Credentials) -> None:
    viewer = create_key(home, acme.tenant_name, "viewer")
    security = create_key(home, acme.tenant_name, "security")
    with server.client() as anon:
        assert anon.get("/v1/notifications/channels").status_code == 401
    with server.client(viewer) as v:
        assert v.get("/v1/notifications/channels").status_code == 403
        assert v.get("/v1/notifications/deliveries").status_code == 403
    with server.client(security) as s:
        assert s.get("/v1/notifications/channels").status_code == 200
        assert s.get("/v1/notifications/dead-letters").status_code == 200
        r = s.post(
            "/v1/notifications/channels",
            json={"type": "webhook", "name": "nope", "config": {"url": "https://x.example/"}},
        )
        assert r.status_code == 403
        assert s.post("/v1/notifications/dead-letters/retry", json={"all": True}).status_code == 403


def test_tenant_isolation_is_404(
    server: VigilServer, http: httpx.Client, globex: Credentials
) -> None:
    hook = _hook(http, "https://acme.example.com/h", "acme-only")
    route = http.post(
        "/v1/notifications/routes", json={"name": "acme-route", "channel_ids": [hook["id"]]}
    ).json()
    with server.client(globex.admin_key) as other:
        assert all(
            c["id"] != hook["id"] for c in other.get("/v1/notifications/channels").json()["items"]
        )
        for method, path, body in [
            ("GET", f"/v1/notifications/channels/{hook['id']}", None),
            ("PATCH", f"/v1/notifications/channels/{hook['id']}", {"enabled": False}),
            ("DELETE", f"/v1/notifications/channels/{hook['id']}", None),
            ("POST", f"/v1/notifications/channels/{hook['id']}/test", None),
            ("POST", f"/v1/notifications/channels/{hook['id']}/rotate-secret", None),
            ("GET", f"/v1/notifications/routes/{route['id']}", None),
            ("DELETE", f"/v1/notifications/routes/{route['id']}", None),
        ]:
            r = other.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
        # Nor can a route of theirs point at our channel.
        r = other.post(
            "/v1/notifications/routes", json={"name": "steal", "channel_ids": [hook["id"]]}
        )
        assert r.status_code == 422
        assert r.json()["errors"][0]["field"] == "body.channel_ids[0]"
    assert http.get(f"/v1/notifications/channels/{hook['id']}").json()["enabled"] is True


def test_test_send_reaches_a_real_receiver_signed(http: httpx.Client, acme: Credentials) -> None:
    with Receiver() as rx:
        hook = _hook(http, rx.url, "test-send")
        r = http.post(f"/v1/notifications/channels/{hook['id']}/test")
        assert r.status_code == 200, r.text
        delivery = r.json()
        assert delivery["kind"] == "test" and delivery["status"] == "delivered"
        assert delivery["attempt_log"][0]["status_code"] == 200
        [req] = rx.requests
        assert verify_signature(hook["signing_secret"], req.headers["x-vigil-signature"], req.body)
        assert req.json()["metadata"]["tenant_id"] == acme.tenant_id
        assert req.headers["x-vigil-event-id"] == delivery["event_id"]
    audit = http.get("/v1/audit/entries", params={"action": "notify.channel.test"}).json()
    assert any(e["target"] == f"channel:{hook['id']}" for e in audit["items"])


def test_outbox_events_are_delivered_by_the_server_workers(
    http: httpx.Client,
    acme: Credentials,
    globex: Credentials,
    produce: Callable[..., SecurityEvent],
) -> None:
    with Receiver([503]) as rx, SmtpServer() as smtp:
        hook = _hook(http, rx.url, "workers-hook")
        mail = http.post(
            "/v1/notifications/channels",
            json={
                "type": "email",
                "name": "workers-mail",
                "config": {
                    "to": ["soc@example.test"],
                    "host": "127.0.0.1",
                    "port": smtp.port,
                    "security": "none",
                    "from_address": "vigil@example.test",
                },
            },
        ).json()
        r = http.post(
            "/v1/notifications/routes",
            json={
                "name": "workers-critical",
                "min_severity": "critical",
                "channel_ids": [hook["id"], mail["id"]],
            },
        )
        assert r.status_code == 201, r.text
        event = produce(acme.tenant_id, severity=Severity.CRITICAL)
        produce(acme.tenant_id, severity=Severity.LOW)
        produce(globex.tenant_id, severity=Severity.CRITICAL)  # another tenant: not ours

        def delivered() -> list[dict[str, Any]] | None:
            items = _deliveries(http, event_id=str(event.event_id), status="delivered")
            return items if len(items) == 2 else None

        items = wait_for(delivered, "webhook and email deliveries")
        by_type = {d["channel_type"]: d for d in items}
        # The webhook first answered 503 and was retried.
        assert [a["status_code"] for a in by_type["webhook"]["attempt_log"]] == [503, 200]
        assert by_type["email"]["attempt_log"][0]["status_code"] == 250
        assert [r.json()["event_id"] for r in rx.requests] == [str(event.event_id)] * 2
        assert verify_signature(
            hook["signing_secret"],
            rx.requests[-1].headers["x-vigil-signature"],
            rx.requests[-1].body,
        )
        [mail_msg] = smtp.mails
        assert mail_msg.message()["Subject"] == "[Vigil] CRITICAL Encoded PowerShell on ws042"

    metrics = httpx.get(http.base_url.join("/metrics")).text
    assert 'vigil_notifications_total{channel_type="webhook",outcome="delivered"}' in metrics
    assert 'vigil_notifications_total{channel_type="email",outcome="delivered"}' in metrics


def test_dead_letters_list_and_retry_over_http(
    http: httpx.Client, acme: Credentials, produce: Callable[..., SecurityEvent]
) -> None:
    port = free_port()  # down
    hook = _hook(http, f"http://127.0.0.1:{port}/hook", "dead-hook")
    http.post(
        "/v1/notifications/routes",
        json={
            "name": "dead-route",
            "event_types": ["incident_opened"],
            "channel_ids": [hook["id"]],
        },
    )
    events = [produce(acme.tenant_id, event_type="incident_opened") for _ in range(3)]

    def all_dead() -> list[dict[str, Any]] | None:
        r = http.get("/v1/notifications/dead-letters", params={"channel_id": hook["id"]})
        items: list[dict[str, Any]] = r.json()["items"]
        return items if len(items) == 3 else None

    dead = wait_for(all_dead, "three dead letters")
    assert {d["event_id"] for d in dead} == {str(e.event_id) for e in events}
    assert all(d["attempts"] == 2 and d["last_outcome"] == "failed" for d in dead)
    assert all(len(d["attempt_log"]) == 2 for d in dead)

    # Paging with a cursor over the delivery log.
    first = http.get(
        "/v1/notifications/deliveries", params={"channel_id": hook["id"], "limit": 2}
    ).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = http.get(
        "/v1/notifications/deliveries",
        params={"channel_id": hook["id"], "limit": 2, "cursor": first["next_cursor"]},
    ).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert {d["id"] for d in first["items"] + second["items"]} == {d["id"] for d in dead}
    bad = http.get("/v1/notifications/deliveries", params={"cursor": "%%%"})
    assert bad.status_code == 422

    with Receiver(port=port) as rx:
        one = http.post(f"/v1/notifications/dead-letters/{dead[0]['id']}/retry")
        assert one.status_code == 200, one.text
        assert one.json()["status"] == "pending"
        wait_for(lambda: len(rx.requests) == 1, "the retried dead letter")
        again = http.post(f"/v1/notifications/dead-letters/{dead[0]['id']}/retry")
        assert again.status_code == 404  # no longer dead

        bulk = http.post("/v1/notifications/dead-letters/retry", json={"channel_id": hook["id"]})
        assert bulk.status_code == 200 and bulk.json()["retried"] == 2
        wait_for(lambda: len(rx.requests) == 3, "the bulk-retried dead letters")

    assert wait_for(
        lambda: all(d["status"] == "delivered" for d in _deliveries(http, channel_id=hook["id"])),
        "all delivered",
    )
    problem = http.post("/v1/notifications/dead-letters/retry", json={"all": True, "ids": ["x"]})
    assert problem.status_code == 422
    audit = http.get("/v1/audit/entries", params={"action": "notify.dead_letter.retry"}).json()
    assert len(audit["items"]) >= 2


def test_health_reports_the_notifier(http: httpx.Client) -> None:
    r = http.get("/health/deep")
    checks = r.json()["checks"] if "checks" in r.json() else r.json()
    notify = checks["notify"]
    assert notify["ok"] is True, notify
    assert "outbox_lag" in notify and "dead_letters" in notify
    assert checks["workers"]["notify-send"]["running"]
    assert checks["workers"]["notify-dispatch"]["running"]
