"""Send due deliveries: claim (short transaction), send (none open), record (short transaction).

A claim moves a due delivery to ``sending`` with a lease and counts the attempt; a process that
dies mid-send leaves the lease to expire, after which another claim retries it (delivery is
at-least-once; receivers deduplicate on ``X-Vigil-Event-Id``). Deliveries of a channel whose
circuit is open are not claimed at all, so they wait without spending attempts; once the
cool-down has passed one of them is claimed as the half-open probe
(:mod:`vigil.notify.circuit`).

:class:`vigil.notify.workers.SenderWorker` runs this engine in `vigil serve` and `vigil worker`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from vigil.events.envelope import SecurityEvent, Severity, vigil_event
from vigil.identity.principal import Principal
from vigil.ledger import service as ledger
from vigil.metering.meter import Meter, NullMeter
from vigil.notify.channels.base import Notifier, OutgoingMessage, SendResult, failed, rejected
from vigil.notify.circuit import Circuit, CircuitPolicy, RetryPolicy
from vigil.notify.clock import Clock, utcnow
from vigil.notify.deliveries import count_dead, get_delivery, purge_finished
from vigil.notify.models import (
    AttemptOutcome,
    ChannelType,
    CircuitState,
    DeliveryKind,
    DeliveryStatus,
    NotificationAttempt,
    NotificationChannel,
    NotificationDelivery,
)
from vigil.notify.schemas import DeliveryRead
from vigil.notify.secretbox import SecretBox, SecretsUnreadableError
from vigil.notify.service import get_channel_row
from vigil.obs.logging import REQUEST_ID
from vigil.obs.metrics import NOTIFICATION_DEAD_LETTERS, NOTIFICATIONS
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.notify.sender")

TEST_EVENT_TYPE = "notification_test"
GAUGE_REFRESH_S = 15.0

D = NotificationDelivery
C = NotificationChannel


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: str
    tenant_id: str
    kind: DeliveryKind
    channel_id: str
    channel_type: ChannelType
    channel_name: str
    config: dict[str, Any]
    sealed_secrets: bytes
    body: bytes
    attempt: int
    round_attempt: int


class DeliveryEngine:
    """Claims, sends and records deliveries; the worker and the test endpoint share it."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        notifiers: Mapping[ChannelType, Notifier],
        box: Callable[[], SecretBox],
        retry: RetryPolicy,
        circuit: CircuitPolicy,
        lease_s: float,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        meter: Meter | None = None,
    ) -> None:
        self.sessions = sessions
        self.notifiers = dict(notifiers)
        self._box = box
        self.retry = retry
        self.circuit = circuit
        self.lease = timedelta(seconds=lease_s)
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self.meter: Meter = meter or NullMeter()
        self._gauge_at = 0.0

    # --- claim ------------------------------------------------------------------------------------

    def claim(
        self,
        limit: int,
        *,
        busy: Mapping[str, int] | None = None,
        per_channel: int | None = None,
    ) -> list[Claim]:
        """Mark up to ``limit`` due deliveries as being sent (one short transaction).

        With ``per_channel``, no channel gets more than that many sends at once (counting
        ``busy``: what is already in flight per channel), so one slow receiver with a backlog
        cannot take every thread while other channels wait.
        """
        if limit <= 0:
            return []
        window = limit if per_channel is None else limit + 200
        now = self.clock()
        due = or_(
            and_(D.status == DeliveryStatus.PENDING.value, D.next_attempt_at <= now),
            and_(D.status == DeliveryStatus.SENDING.value, D.lease_until <= now),
        )
        candidates = (
            select(D.id, D.channel_id, C.circuit_state)
            .join(C, C.id == D.channel_id)
            .where(
                C.enabled.is_(True),
                or_(C.circuit_state == CircuitState.CLOSED.value, C.circuit_retry_at <= now),
            )
            .limit(window)
            .with_for_update(skip_locked=True, of=D)
        )
        session = system_session(self.sessions)
        try:
            # Two index range scans (status, next_attempt_at) rather than one OR: the due scan
            # stops after ``window`` rows instead of sorting every due delivery.
            rows = list(
                session.execute(
                    candidates.where(
                        D.status == DeliveryStatus.SENDING.value, D.lease_until <= now
                    ).order_by(D.lease_until)
                )
            )
            rows += session.execute(
                candidates.where(
                    D.status == DeliveryStatus.PENDING.value, D.next_attempt_at <= now
                ).order_by(D.next_attempt_at)
            ).all()
            chosen: list[str] = []
            probing: set[str] = set()
            refused: set[str] = set()
            load: Counter[str] = Counter(busy or {})
            for delivery_id, channel_id, state in rows:
                if len(chosen) >= limit:
                    break
                if per_channel is not None and load[channel_id] >= per_channel:
                    continue
                if state != CircuitState.CLOSED.value:
                    if channel_id in probing or channel_id in refused:
                        continue  # one probe per channel; the rest keep waiting
                    if not self._start_probe(session, channel_id, now):
                        refused.add(channel_id)
                        continue
                    probing.add(channel_id)
                chosen.append(delivery_id)
                load[channel_id] += 1
            claimed: list[str] = []
            for delivery_id in chosen:
                result = session.execute(
                    update(D)
                    .where(D.id == delivery_id, due)
                    .values(
                        status=DeliveryStatus.SENDING.value,
                        lease_until=now + self.lease,
                        attempts=D.attempts + 1,
                        round_attempts=D.round_attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    claimed.append(delivery_id)
            claims = self._load_claims(session, claimed)
            session.commit()
            return claims
        finally:
            session.rollback()
            session.close()

    def _start_probe(self, session: Session, channel_id: str, now: datetime) -> bool:
        """Move an open circuit whose cool-down passed to half-open; False if another sender
        got there first. ``circuit_retry_at`` then bounds a probe whose sender died."""
        result = session.execute(
            update(C)
            .where(
                C.id == channel_id,
                C.circuit_state != CircuitState.CLOSED.value,
                C.circuit_retry_at <= now,
            )
            .values(circuit_state=CircuitState.HALF_OPEN.value, circuit_retry_at=now + self.lease)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    def _load_claims(self, session: Session, ids: list[str]) -> list[Claim]:
        if not ids:
            return []
        rows = session.execute(
            select(
                D.id,
                D.tenant_id,
                D.kind,
                D.channel_id,
                C.type,
                C.name,
                C.config,
                C.secrets,
                D.body,
                D.attempts,
                D.round_attempts,
            )
            .join(C, C.id == D.channel_id)
            .where(D.id.in_(ids))
            .order_by(D.next_attempt_at, D.created_at)
        ).all()
        return [
            Claim(
                delivery_id=r[0],
                tenant_id=r[1],
                kind=DeliveryKind(r[2]),
                channel_id=r[3],
                channel_type=ChannelType(r[4]),
                channel_name=r[5],
                config=dict(r[6]),
                sealed_secrets=r[7],
                body=r[8],
                attempt=r[9],
                round_attempt=r[10],
            )
            for r in rows
        ]

    # --- send -------------------------------------------------------------------------------------

    def attempt(self, claim: Claim) -> tuple[SendResult, datetime, float]:
        """Send one claimed delivery; no database work. Returns (result, start, duration ms)."""
        started = self.clock()
        t0 = time.perf_counter()
        result = self._send(claim)
        return result, started, round((time.perf_counter() - t0) * 1000, 3)

    def _send(self, claim: Claim) -> SendResult:
        notifier = self.notifiers.get(claim.channel_type)
        if notifier is None:
            return rejected(f"no notifier for channel type {claim.channel_type}")
        try:
            secrets = self._box().open(claim.sealed_secrets)
            event = SecurityEvent.model_validate_json(claim.body)
        except SecretsUnreadableError as exc:
            return rejected(str(exc))
        except ValueError as exc:
            return rejected(f"stored event is not a valid envelope: {exc}")
        message = OutgoingMessage(
            delivery_id=claim.delivery_id,
            attempt=claim.attempt,
            event=event,
            body=claim.body,
            channel_id=claim.channel_id,
            channel_name=claim.channel_name,
            config=claim.config,
            secrets=secrets,
        )
        try:
            return notifier.send(message)
        except Exception as exc:  # a notifier bug must not kill the sender thread
            log.exception("notifier raised", extra={"delivery_id": claim.delivery_id})
            return failed(f"internal error: {type(exc).__name__}: {exc}")

    # --- record -----------------------------------------------------------------------------------

    def _next_delay(self, round_attempt: int, result: SendResult) -> float:
        with self._rng_lock:
            return self.retry.delay(round_attempt, self.rng, retry_after_s=result.retry_after_s)

    def record(
        self, claim: Claim, result: SendResult, started: datetime, duration_ms: float
    ) -> DeliveryStatus:
        """Write the attempt to the log and move the delivery and the channel's circuit on."""
        now = self.clock()
        session = system_session(self.sessions)
        try:
            delivery = session.get(D, claim.delivery_id, with_for_update=True)
            if delivery is None:
                return DeliveryStatus.CANCELLED
            status = DeliveryStatus(delivery.status)
            retry_at: datetime | None = None
            if status is DeliveryStatus.SENDING:
                status, retry_at = self._transition(claim, result, now)
                delivery.status = status.value
                delivery.lease_until = None
                delivery.next_attempt_at = retry_at
                if status is DeliveryStatus.DELIVERED:
                    delivery.delivered_at = now
                elif status is DeliveryStatus.DEAD:
                    delivery.dead_at = now
            delivery.last_outcome = result.outcome.value
            delivery.last_error = result.error
            delivery.last_status_code = result.status_code
            delivery.updated_at = now
            session.add(
                NotificationAttempt(
                    tenant_id=claim.tenant_id,
                    delivery_id=claim.delivery_id,
                    number=claim.attempt,
                    started_at=started,
                    duration_ms=duration_ms,
                    outcome=result.outcome.value,
                    status_code=result.status_code,
                    reply=result.reply,
                    error=result.error,
                    retry_at=retry_at,
                )
            )
            if claim.kind is not DeliveryKind.TEST:
                self._move_circuit(session, claim.channel_id, result, now)
            session.commit()
        finally:
            session.rollback()
            session.close()
        NOTIFICATIONS.labels(claim.channel_type.value, result.outcome.value).inc()
        if status is DeliveryStatus.DELIVERED:
            self.meter.add(claim.tenant_id, "notifications")
        if status is DeliveryStatus.DEAD:
            log.warning(
                "notification dead-lettered",
                extra={
                    "delivery_id": claim.delivery_id,
                    "channel_id": claim.channel_id,
                    "error": result.error,
                },
            )
            self.refresh_dead_gauge(force=True)
        return status

    def _transition(
        self, claim: Claim, result: SendResult, now: datetime
    ) -> tuple[DeliveryStatus, datetime | None]:
        if result.ok:
            return DeliveryStatus.DELIVERED, None
        if claim.kind is DeliveryKind.TEST:
            return DeliveryStatus.FAILED, None
        if result.outcome is AttemptOutcome.REJECTED or self.retry.exhausted(claim.round_attempt):
            return DeliveryStatus.DEAD, None
        delay = self._next_delay(claim.round_attempt, result)
        return DeliveryStatus.PENDING, now + timedelta(seconds=delay)

    def _move_circuit(
        self, session: Session, channel_id: str, result: SendResult, now: datetime
    ) -> None:
        channel = session.get(C, channel_id, with_for_update=True)
        if channel is None:
            return
        current = Circuit(
            state=CircuitState(channel.circuit_state),
            failures=channel.circuit_failures,
            opened_at=channel.circuit_opened_at,
            retry_at=channel.circuit_retry_at,
        )
        new = current.succeeded() if result.ok else current.failed(now, self.circuit)
        if new.state is CircuitState.OPEN and current.state is CircuitState.CLOSED:
            log.warning(
                "notification channel circuit opened",
                extra={"channel_id": channel_id, "failures": new.failures},
            )
        channel.circuit_state = new.state.value
        channel.circuit_failures = new.failures
        channel.circuit_opened_at = new.opened_at
        channel.circuit_retry_at = new.retry_at

    # --- whole cycles -----------------------------------------------------------------------------

    def process(self, claim: Claim) -> DeliveryStatus:
        result, started, duration_ms = self.attempt(claim)
        return self.record(claim, result, started, duration_ms)

    def run_due(self, limit: int = 100) -> int:
        """Claim and send due deliveries one by one in this thread (tests, tools); the count."""
        claims = self.claim(limit)
        for claim in claims:
            self.process(claim)
        return len(claims)

    def send_test(self, session: Session, *, channel_id: str, principal: Principal) -> DeliveryRead:
        """Send a test event to a channel now and answer with the logged delivery.

        Bypasses routing and the circuit breaker and is never retried. ``session`` is the
        caller's tenant session; it is committed before the network I/O starts.
        """
        channel = get_channel_row(session, channel_id=channel_id)
        event = vigil_event(
            tenant_id=principal.tenant_id,
            event_type=TEST_EVENT_TYPE,
            severity=Severity.INFO,
            details={
                "title": f"Vigil test notification for channel {channel.name}",
                "channel_id": channel.id,
                "requested_by": principal.actor,
            },
        )
        body = orjson.dumps(event.to_json_dict())
        now = self.clock()
        delivery = D(
            id=str(uuid.uuid4()),
            tenant_id=principal.tenant_id,
            event_id=str(event.event_id),
            channel_id=channel.id,
            channel_type=channel.type,
            event_type=event.event_type,
            severity=event.severity.value,
            kind=DeliveryKind.TEST.value,
            status=DeliveryStatus.SENDING.value,
            attempts=1,
            round_attempts=1,
            lease_until=now + self.lease,
            body=body,
            created_at=now,
            updated_at=now,
        )
        session.add(delivery)
        ledger.append(
            session,
            tenant=principal.tenant_id,
            actor=principal.actor,
            action="notify.channel.test",
            target=f"channel:{channel.id}",
            request_id=REQUEST_ID.get(),
            change={"delivery_id": delivery.id, "event_id": delivery.event_id},
        )
        claim = Claim(
            delivery_id=delivery.id,
            tenant_id=principal.tenant_id,
            kind=DeliveryKind.TEST,
            channel_id=channel.id,
            channel_type=ChannelType(channel.type),
            channel_name=channel.name,
            config=dict(channel.config),
            sealed_secrets=channel.secrets,
            body=body,
            attempt=1,
            round_attempt=1,
        )
        session.commit()
        self.process(claim)
        session.expire_all()  # the delivery row was changed by the recording transaction
        return get_delivery(session, delivery_id=claim.delivery_id)

    def purge_log(self, retention_s: float) -> int:
        """Delete finished deliveries older than ``retention_s`` (dead letters stay)."""
        cutoff = self.clock() - timedelta(seconds=retention_s)
        session = system_session(self.sessions)
        try:
            removed = purge_finished(session, before=cutoff)
            session.commit()
            return removed
        finally:
            session.rollback()
            session.close()

    def refresh_dead_gauge(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._gauge_at < GAUGE_REFRESH_S:
            return
        self._gauge_at = time.monotonic()
        session = system_session(self.sessions)
        try:
            NOTIFICATION_DEAD_LETTERS.set(count_dead(session))
        finally:
            session.close()
