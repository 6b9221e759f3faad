"""Notify fixtures: a migrated database (SQLite and PostgreSQL), the real dispatcher and sender
with a controllable clock, real notifiers, and helpers to emit events and run the pipeline."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import TypeAdapter
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import PG_BASE_URL
from vigil.bus import outbox
from vigil.events.envelope import SecurityEvent, Severity, vigil_event
from vigil.identity.principal import ALL_PERMISSIONS, Principal
from vigil.notify import deliveries, service
from vigil.notify.channels.netguard import AddressPolicy
from vigil.notify.circuit import CircuitPolicy, RetryPolicy
from vigil.notify.clock import FakeClock
from vigil.notify.config import NotifySettings
from vigil.notify.dispatcher import Dispatcher
from vigil.notify.schemas import (
    ChannelCreate,
    ChannelCreated,
    DeliveryRead,
    RouteCreate,
    RouteRead,
)
from vigil.notify.secretbox import SecretBox
from vigil.notify.sender import DeliveryEngine
from vigil.notify.wiring import default_notifiers
from vigil.store import create_engine_for, session_factory, session_scope, upgrade
from vigil.store.tenancy import tenant_session

CHANNEL_CREATE: TypeAdapter[Any] = TypeAdapter(ChannelCreate)  # type: ignore[arg-type]

#: Small, test-friendly delivery settings; tests override what they exercise.
TEST_SETTINGS = dict(
    retry_base_s=2.0,
    retry_cap_s=60.0,
    max_attempts=4,
    circuit_failure_threshold=100,
    circuit_cooldown_s=60.0,
    http_connect_timeout_s=2.0,
    http_timeout_s=5.0,
    smtp_timeout_s=5.0,
    lease_s=30.0,
)


@dataclass
class NotifyEnv:
    factory: sessionmaker[Session]
    settings: NotifySettings
    clock: FakeClock
    box: SecretBox
    engine: DeliveryEngine
    dispatcher: Dispatcher
    tenants: dict[str, str] = field(default_factory=dict)

    def tenant(self, name: str = "acme") -> str:
        return self.tenants.setdefault(name, str(uuid.uuid4()))

    def principal(self, name: str = "acme") -> Principal:
        return Principal(
            tenant_id=self.tenant(name),
            subject_id=f"{name}-admin",
            kind="user",
            roles=frozenset({"admin"}),
            permissions=ALL_PERMISSIONS,
        )

    @contextmanager
    def session(self, name: str = "acme") -> Iterator[Session]:
        s = tenant_session(self.factory, self.tenant(name))
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def channel(self, data: dict[str, Any], *, tenant: str = "acme") -> ChannelCreated:
        with self.session(tenant) as s:
            return service.create_channel(
                s,
                data=CHANNEL_CREATE.validate_python(data),
                principal=self.principal(tenant),
                box=self.box,
            )

    def webhook(
        self, url: str, *, tenant: str = "acme", name: str | None = None, **kw: Any
    ) -> ChannelCreated:
        data: dict[str, Any] = {
            "type": "webhook",
            "name": name or f"hook-{uuid.uuid4().hex[:6]}",
            "config": {"url": url},
            **kw,
        }
        return self.channel(data, tenant=tenant)

    def route(self, *, tenant: str = "acme", **kw: Any) -> RouteRead:
        kw.setdefault("name", f"route-{uuid.uuid4().hex[:6]}")
        with self.session(tenant) as s:
            return service.create_route(
                s, data=RouteCreate.model_validate(kw), principal=self.principal(tenant)
            )

    def emit(
        self,
        *,
        tenant: str = "acme",
        event_type: str = "threat_detected",
        severity: Severity = Severity.HIGH,
        details: dict[str, Any] | None = None,
    ) -> SecurityEvent:
        event = vigil_event(
            tenant_id=self.tenant(tenant),
            event_type=event_type,
            severity=severity,
            details=details if details is not None else {"title": "Mimikatz on WS-7"},
        )
        with session_scope(self.factory) as s:
            outbox.emit(s, tenant_id=self.tenant(tenant), event=event)
        return event

    def dispatch(self) -> int:
        total = 0
        while True:
            read, planned = self.dispatcher.dispatch_once()
            total += planned
            if read == 0:
                return total

    def pump(self) -> int:
        """Dispatch everything, then send what is due now; the number of sends."""
        self.dispatch()
        return self.engine.run_due()

    def deliveries(self, tenant: str = "acme", **filters: Any) -> list[DeliveryRead]:
        with self.session(tenant) as s:
            return deliveries.list_deliveries(s, limit=500, **filters).items

    def delivery(self, delivery_id: str, tenant: str = "acme") -> DeliveryRead:
        with self.session(tenant) as s:
            return deliveries.get_delivery(s, delivery_id=delivery_id)


def make_env(engine: Engine, **overrides: Any) -> NotifyEnv:
    settings = NotifySettings(**{**TEST_SETTINGS, **overrides})
    factory = session_factory(engine)
    clock = FakeClock()
    box = SecretBox.generate()
    policy = AddressPolicy(
        allow_private=settings.allow_private_networks, blocked=settings.blocked_networks
    )
    delivery = DeliveryEngine(
        sessions=factory,
        notifiers=default_notifiers(settings, policy),
        box=lambda: box,
        retry=RetryPolicy(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            max_attempts=settings.max_attempts,
            retry_after_max_s=settings.retry_after_max_s,
        ),
        circuit=CircuitPolicy(
            threshold=settings.circuit_failure_threshold, cooldown_s=settings.circuit_cooldown_s
        ),
        lease_s=settings.lease_s,
        clock=clock,
        rng=random.Random(1234),
    )
    dispatcher = Dispatcher(sessions=factory, batch=50, clock=clock)
    return NotifyEnv(factory, settings, clock, box, delivery, dispatcher)


# One migrated database per backend for the whole run (migrating per test costs ~1.5 s on
# PostgreSQL); every test starts from empty notify tables and an empty outbox. Tenants are fresh
# uuids per test, so tenant-filtered ledger reads never see another test's entries.
_CLEANED = (
    "notification_attempts",
    "notification_deliveries",
    "notification_route_channels",
    "notification_routes",
    "notification_channels",
    "outbox_events",
    "consumer_offsets",
)


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def notify_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('notify-db') / 'vigil.db'}"
        upgrade(url)
        yield url
        return
    admin: Engine = request.getfixturevalue("pg_admin")
    schema = f"vigil_notify_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    pg_url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = pg_url.render_as_string(hide_password=False)
    try:
        upgrade(rendered)
        yield rendered
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture(scope="session")
def notify_engine(notify_db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(notify_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_engine(notify_engine: Engine) -> Engine:
    """Overrides the per-test migrated database of tests/conftest.py with the shared one."""
    with notify_engine.begin() as conn:
        for table in _CLEANED:
            conn.execute(text(f"DELETE FROM {table}"))
    return notify_engine


@pytest.fixture
def env(db_engine: Engine) -> NotifyEnv:
    return make_env(db_engine)
