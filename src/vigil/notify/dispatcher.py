"""Turn security events from the outbox into deliveries.

The dispatcher reads the outbox after its committed offset (consumer ``notify``), picks each
event's channels (:mod:`vigil.notify.routing`) and inserts one delivery per (event, channel) in
the same transaction that advances the offset. Deliveries are unique per (event, channel) and
inserted with "on conflict do nothing", so a replay (a crash before the commit, an offset reset,
two dispatchers racing) never creates, and so never sends, anything twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from vigil.bus import offsets as bus_offsets
from vigil.bus import outbox
from vigil.bus.models import ConsumerOffset
from vigil.bus.outbox import StreamItem
from vigil.events.envelope import Severity
from vigil.notify.clock import Clock, utcnow
from vigil.notify.models import (
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationRoute,
    NotificationRouteChannel,
)
from vigil.notify.routing import RouteRule, select_targets
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.notify.dispatcher")

CONSUMER = "notify"


@dataclass
class TenantRouting:
    channels: dict[str, str] = field(default_factory=dict)  # enabled channel id -> type
    rules: list[RouteRule] = field(default_factory=list)


def load_routing(session: Session, tenants: Sequence[str]) -> dict[str, TenantRouting]:
    """Enabled channels and routes of ``tenants`` (a system session sees every tenant)."""
    out = {t: TenantRouting() for t in tenants}
    for cid, tenant, kind in session.execute(
        select(NotificationChannel.id, NotificationChannel.tenant_id, NotificationChannel.type)
        .where(NotificationChannel.tenant_id.in_(list(tenants)))
        .where(NotificationChannel.enabled.is_(True))
    ):
        out[tenant].channels[cid] = kind
    routes = session.execute(
        select(
            NotificationRoute.id,
            NotificationRoute.tenant_id,
            NotificationRoute.min_severity,
            NotificationRoute.tags,
            NotificationRoute.event_types,
        )
        .where(NotificationRoute.tenant_id.in_(list(tenants)))
        .where(NotificationRoute.enabled.is_(True))
        .order_by(NotificationRoute.name)
    ).all()
    links: dict[str, list[str]] = {r[0]: [] for r in routes}
    if links:
        for rid, cid in session.execute(
            select(NotificationRouteChannel.route_id, NotificationRouteChannel.channel_id)
            .where(NotificationRouteChannel.route_id.in_(list(links)))
            .order_by(NotificationRouteChannel.channel_id)
        ):
            links[rid].append(cid)
    for rid, tenant, min_severity, tags, event_types in routes:
        out[tenant].rules.append(
            RouteRule(
                id=rid,
                channel_ids=tuple(links[rid]),
                min_severity=Severity(min_severity) if min_severity else None,
                tags=frozenset(t.lower() for t in tags),
                event_types=frozenset(event_types),
            )
        )
    return out


def plan_deliveries(
    items: Sequence[StreamItem], routing: dict[str, TenantRouting], now: datetime
) -> list[dict[str, Any]]:
    """The delivery rows for ``items`` (pure)."""
    rows: list[dict[str, Any]] = []
    for item in items:
        tenant = routing.get(item.tenant_id)
        if tenant is None or not tenant.channels:
            continue
        targets = select_targets(item.event, tenant.rules, usable_channels=tenant.channels)
        if not targets:
            continue
        # The exact bytes the outbox stored (emit serialises the same way).
        body = orjson.dumps(item.event.to_json_dict())
        for target in targets:
            rows.append(
                {
                    "id": str(uuid.uuid4()),
                    "tenant_id": item.tenant_id,
                    "event_id": str(item.event.event_id),
                    "channel_id": target.channel_id,
                    "channel_type": tenant.channels[target.channel_id],
                    "event_type": item.event.event_type,
                    "severity": item.event.severity.value,
                    "kind": target.kind.value,
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "round_attempts": 0,
                    "next_attempt_at": now,
                    "body": body,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    return rows


def insert_deliveries(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert, skipping (event, channel) pairs that already have a delivery."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    conflict = ["event_id", "channel_id"]
    if dialect == "postgresql":
        pg = postgresql.insert(NotificationDelivery).on_conflict_do_nothing(index_elements=conflict)
        session.execute(pg, rows)
    elif dialect == "sqlite":
        lite = sqlite.insert(NotificationDelivery).on_conflict_do_nothing(index_elements=conflict)
        session.execute(lite, rows)
    else:
        raise NotImplementedError(f"notify dispatcher: unsupported database {dialect}")


class Dispatcher:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        batch: int = 200,
        poll_interval_s: float = 1.0,
        clock: Clock = utcnow,
        on_deliveries: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.batch = batch
        self.poll_interval_s = poll_interval_s
        self.clock = clock
        self.on_deliveries = on_deliveries
        self.position: int | None = None

    def dispatch_once(self) -> tuple[int, int]:
        """Consume one batch: (events read, deliveries planned)."""
        session = system_session(self.sessions)
        try:
            # Lock our offset row first so dispatchers in several processes take turns.
            row = session.get(ConsumerOffset, CONSUMER, with_for_update=True)
            position = row.position if row is not None else 0
            items = outbox.read_after(session, after_seq=position, limit=self.batch)
            if not items:
                self.position = position
                return 0, 0
            tenants = sorted({i.tenant_id for i in items})
            rows = plan_deliveries(items, load_routing(session, tenants), self.clock())
            insert_deliveries(session, rows)
            bus_offsets.advance(session, name=CONSUMER, position=items[-1].seq)
            session.commit()
            self.position = items[-1].seq
        finally:
            session.rollback()
            session.close()
        if rows and self.on_deliveries is not None:
            self.on_deliveries()
        return len(items), len(rows)

    def step(self) -> float:
        read, _ = self.dispatch_once()
        return 0.0 if read >= self.batch else self.poll_interval_s

    def lag(self) -> int:
        """Outbox events not yet dispatched."""
        session = system_session(self.sessions)
        try:
            return max(0, outbox.last_seq(session) - bus_offsets.get(session, name=CONSUMER))
        finally:
            session.close()
