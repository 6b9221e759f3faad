"""Health, metrics, request ids and JSON logs of the real `vigil serve` process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.support.server import VigilServer
from vigil.config import load_settings
from vigil.obs import health
from vigil.runtime import build_runtime


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VigilServer]:
    srv = VigilServer(home=tmp_path_factory.mktemp("health") / "home").start()
    yield srv
    srv.stop()


def test_live_and_ready(server: VigilServer) -> None:
    with server.client() as c:
        assert c.get("/health/live").json() == {"status": "ok"}
        ready = c.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["database"]["ok"] is True
        assert "down" not in ready.json()
        assert ready.headers["cache-control"] == "no-store"


def test_deep_health_needs_credentials(server: VigilServer) -> None:
    with server.client() as c:
        r = c.get("/health/deep")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"].endswith("/unauthenticated")


def test_request_id_is_echoed_and_logged(server: VigilServer) -> None:
    with server.client() as c:
        r = c.get("/v1/does-not-exist", headers={"X-Request-ID": "trace-abc.123"})
        generated = c.get("/health/live").headers["x-request-id"]
    assert r.status_code == 404
    assert r.headers["x-request-id"] == "trace-abc.123"
    assert r.json()["request_id"] == "trace-abc.123"
    assert len(generated) == 32
    lines = [orjson.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    logged = [x for x in lines if x.get("request_id") == "trace-abc.123"]
    assert logged and logged[-1]["status"] == 404 and logged[-1]["path"] == "/v1/does-not-exist"


def test_unsafe_request_ids_are_replaced(server: VigilServer) -> None:
    with server.client() as c:
        r = c.get("/health/live", headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


def test_metrics_count_requests_by_route_template(server: VigilServer) -> None:
    with server.client() as c:
        c.get("/health/ready")
        text = c.get("/metrics").text
    assert 'vigil_http_requests_total{method="GET",route="/health/ready",status="200"}' in text
    assert "vigil_http_request_duration_seconds_bucket" in text
    assert "vigil_events_accepted_total" in text


def test_openapi_document_is_served(server: VigilServer) -> None:
    with server.client() as c:
        doc = c.get("/openapi.json").json()
    assert doc["info"]["title"] == "Vigil"
    assert "/health/ready" in doc["paths"]


def test_readiness_fails_when_storage_is_unreachable(tmp_path: Path) -> None:
    settings = load_settings(
        home=tmp_path, database_url="postgresql+psycopg://postgres@127.0.0.1:1/none"
    )
    runtime = build_runtime(settings)
    try:
        ok, checks = health.readiness(runtime)
    finally:
        runtime.engine.dispose()
    assert ok is False
    assert checks["database"]["ok"] is False
    down = health.down(checks)
    assert set(down) == {"database"}
    assert down["database"].startswith("OperationalError")
    assert "Connection refused" in down["database"] or "connect" in down["database"]
