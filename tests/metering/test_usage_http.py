"""Detections and alerts are metered per tenant: events through a real `vigil serve`, usage read
back with GET /v1/usage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.identity import Credentials, bootstrap
from tests.support.server import VigilServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_RULES = ROOT / "examples" / "rules"
SAMPLE_EVENTS = ROOT / "examples" / "events" / "sample.jsonl"
NDJSON = {"content-type": "application/x-ndjson"}


Served = tuple[VigilServer, Credentials, Credentials]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("usage-home")
    acme = bootstrap(home, tenant="acme")
    other = bootstrap(home, tenant="other")
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)]).start()
    try:
        yield server, acme, other
    finally:
        server.stop()


def _totals(http: httpx.Client) -> dict[str, int]:
    r = http.get("/v1/usage", params={"granularity": "hour"})
    assert r.status_code == 200, r.text
    totals: dict[str, int] = r.json()["totals"]
    return totals


def _alerts(http: httpx.Client) -> list[dict[str, Any]]:
    r = http.get("/v1/alerts", params={"limit": 200})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def _settled(http: httpx.Client, *, beyond: int = 0, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The tenant's alerts once detection has caught up: the queue is empty and the alerts hold
    more than ``beyond`` detections and stopped changing."""
    deadline = time.monotonic() + timeout
    previous: list[dict[str, Any]] | None = None
    while time.monotonic() < deadline:
        queue = http.get("/health/deep").json()["checks"]["queue"]
        alerts = _alerts(http)
        held = sum(a["count"] for a in alerts)
        if queue["depth"] == 0 and held > beyond and alerts == previous:
            return alerts
        previous = alerts
        time.sleep(0.3)
    raise AssertionError(f"detection did not settle: {previous}")


def _held(alerts: list[dict[str, Any]]) -> int:
    return sum(int(a["count"]) for a in alerts)


def test_detections_and_alerts_are_counted_for_their_tenant_only(
    served: Served,
) -> None:
    server, acme, other = served
    body = SAMPLE_EVENTS.read_bytes()
    with server.client(acme.admin_key) as http, server.client(other.admin_key) as http_other:
        assert http.post("/v1/events", content=body, headers=NDJSON).status_code == 202
        alerts = _settled(http)
        totals = _totals(http)
        # Every detection went into exactly one alert: the alerts' counts add up to them.
        assert totals.get("alerts") == len(alerts) > 0
        assert totals.get("detections") == _held(alerts)

        # The same records again (no event ids, so new events): their detections fold into the
        # open alerts, which adds detections and no alerts.
        assert http.post("/v1/events", content=body, headers=NDJSON).status_code == 202
        again = _settled(http, beyond=_held(alerts))
        usage = _totals(http)
        assert usage["alerts"] == len(again) == len(alerts)
        assert usage["detections"] == _held(again) > totals["detections"]

        theirs = _totals(http_other)
        assert "detections" not in theirs and "alerts" not in theirs
        assert _alerts(http_other) == []
