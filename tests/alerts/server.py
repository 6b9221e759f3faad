"""A real `vigil serve` for the alerts and incidents HTTP tests: the example rules, two tenants,
keys of several roles, and a way to seed alerts straight through the service layer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.alerts.helpers import T0
from tests.ingest.conftest import EXAMPLE_RULES
from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer
from vigil.alerts.intake import DetectionRecord
from vigil.alerts.service import RecordedDetection, record_detections
from vigil.store import create_engine_for, session_factory, session_scope


@dataclass
class Service:
    server: VigilServer
    acme: Credentials
    other: Credentials
    viewer_key: str
    engine: Engine

    def client(self, key: str | None = None) -> httpx.Client:
        return self.server.client(self.acme.admin_key if key is None else key)

    def seed(self, detections: Sequence[DetectionRecord]) -> list[RecordedDetection]:
        """Record detections in the server's database (as its pipeline would)."""
        with session_scope(session_factory(self.engine)) as session:
            return record_detections(session, detections=detections, now=max(datetime.now(UTC), T0))


PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, slug: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an RFC 9457 problem with ``status`` (and type ``slug``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    if slug:
        assert body["type"].endswith("/" + slug)
    return body


def wait_for(check: Callable[[], Any], *, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def start_service(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None
) -> Iterator[Service]:
    home = tmp_path_factory.mktemp(name)
    acme = bootstrap(home, tenant="acme")
    other = bootstrap(home, tenant="other")
    viewer = create_key(home, "acme", "viewer")
    server = VigilServer(home, args=["--rules", str(EXAMPLE_RULES)], env=env or {}).start()
    engine = create_engine_for(f"sqlite:///{home / 'vigil.db'}")
    try:
        yield Service(server, acme, other, viewer, engine)
    finally:
        server.stop()
        engine.dispose()


_shared: list[Service] = []


@pytest.fixture(scope="session")
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Service:
    """One server for all alerts and incidents HTTP tests (starting one costs seconds; the
    conftests of both folders expose this fixture, the module keeps the one instance); the
    escalation worker ticks fast so a test can watch it fire."""
    if not _shared:
        env = {"VIGIL_INCIDENTS__ESCALATION_INTERVAL_S": "0.3"}
        running = start_service(tmp_path_factory, "alerts-incidents-api", env=env)
        _shared.append(next(running))
        request.addfinalizer(lambda: next(running, None))
    return _shared[0]
