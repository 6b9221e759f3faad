"""The event queue on Redis Streams, for API and worker replicas (``VIGIL_QUEUE_URL=redis://…``).

Same contract as :class:`vigil.bus.queue.SqlEventQueue` (see :class:`vigil.bus.queue.EventQueue`),
built from what Redis Streams already do well:

* **Publish** runs one Lua script per chunk of records (chunks of one request are pipelined in
  one round trip). The script checks the record's idempotency key (``SET NX EX`` on
  ``<stream>:seen:<tenant>:<event_id>``, living for the idempotency window) and ``XADD``\\ s the
  record in the same atomic step, so a crash can neither lose a record whose key was set nor
  add a record twice. Records without an ``event_id`` are always added. Each script call also
  carries a fresh chunk token (``<stream>:chunk:<token>``, kept ``CHUNK_TOKEN_TTL_S``): when
  redis-py retries a pipeline whose reply was lost on a broken connection, the script finds its
  token and answers the first run's result instead of appending the chunk again.
* **Read** is ``XREADGROUP`` in the consumer group (``vigil-workers``) as consumer
  ``<host>-<pid>``, with a short ``BLOCK``. Before taking anything the reader checks that the
  consumer's database answers (``SELECT 1`` on its session): during a database outage records
  stay in Redis, undelivered, instead of being delivered, failed and counted towards the
  dead-letter stream. Every ``claim_interval_s`` the reader first takes
  over records another consumer (a dead or failing worker) has held unacknowledged for longer
  than ``claim_idle_s`` (``XAUTOCLAIM``).
* **Ack**: inside the consumer's transaction nothing happens (the pipeline's results and the
  ack cannot share a transaction across two systems); :meth:`RedisStreamsQueue.acknowledged`,
  called after the commit, ``XACK``\\ s. A crash between the commit and the ``XACK`` redelivers
  the batch: at-least-once, made harmless by the detections' unique ids.
* **Dead letters.** Each take-over increments the record's delivery counter. A record
  delivered ``solo_after_deliveries`` times is retried alone (one poison record does not drag a
  batch along); after ``max_deliveries`` it moves atomically to ``vigil:events:dead`` with its
  error, where the API lists it and can replay it (the replay keeps the record's identity: its
  detection ids stay the same). Both moves are written to the audit ledger (``queue.dead_letter``
  by the worker, ``queue.dead_letter.replay`` by the API). The bury and replay scripts are safe
  to run twice (a retried command after a lost reply): a record that is no longer pending is
  not buried again, and a replayed id answers the stream id it was replayed as.
* **Backpressure.** When undelivered + pending records exceed ``max_backlog``, ``publish``
  raises :class:`vigil.errors.UnavailableError` (503 with Retry-After). An unreachable Redis is a
  503 too, never a 500; workers retry their read every second and carry on by themselves once
  Redis is back (a batch committed while the ``XACK`` could not be sent is redelivered after
  ``claim_idle_s`` and produces nothing new).
* **Sequence numbers.** :class:`vigil.bus.queue.QueuedEvent` carries an integer ``seq`` (the
  pipeline keys detections of records without ``event_id`` on it). A stream id ``<ms>-<n>`` maps
  to ``ms << 20 | n``: stable across redeliveries, ordered like the stream, within 63 bits.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from sqlalchemy import text
from sqlalchemy.orm import Session

from vigil.bus.dead_letters import PAGE_SCAN, DeadLetter, record_dead_letter
from vigil.bus.queue import (
    Listener,
    PublishResult,
    QueuedEvent,
    QueueRecord,
    QueueStats,
    _Listeners,
)
from vigil.bus.redis_config import RedisQueueEnvSettings, RedisQueueSettings
from vigil.bus.redis_scripts import BURY_LUA, PUBLISH_LUA, REPLAY_LUA
from vigil.errors import NotFoundError, UnavailableError
from vigil.obs.metrics import QUEUE_DEAD_LETTERED

log = logging.getLogger("vigil.queue")

SEQ_SHIFT = 20
_SEQ_MASK = (1 << SEQ_SHIFT) - 1
#: errors meaning "Redis is not reachable right now" (503, retry later)
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
_ERRORS_TTL_S = 86_400
#: How long a publish chunk's token (and a replay's marker) is remembered: longer than any
#: retry of the same command can take (3 attempts of at most the socket timeout each).
CHUNK_TOKEN_TTL_S = 300


def id_to_seq(stream_id: str) -> int:
    ms, _, n = stream_id.partition("-")
    return (int(ms) << SEQ_SHIFT) | (int(n or 0) & _SEQ_MASK)


def seq_to_id(seq: int) -> str:
    return f"{seq >> SEQ_SHIFT}-{seq & _SEQ_MASK}"


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True, slots=True)
class StreamEvent(QueuedEvent):
    """A queued event with the id of the stream entry that carries it (for ``XACK``)."""

    stream_id: str = ""


def consumer_identity() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RedisStreamsQueue(_Listeners):
    """The event queue as a Redis stream with one consumer group (see the module docstring)."""

    def __init__(
        self,
        url: str,
        settings: RedisQueueSettings | None = None,
        *,
        consumer: str = "detection",
        idempotency_window_s: float = 3600.0,
        client: redis.Redis | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.settings = cfg = settings or RedisQueueSettings()
        #: the protocol's consumer name that reads through ``cfg.group``; other names are
        #: groups of their own
        self.default_consumer = consumer
        self.idempotency_window_s = idempotency_window_s
        self._name = name
        self.redis: redis.Redis = client or redis.Redis.from_url(
            url,
            socket_timeout=cfg.block_ms / 1000 + 10,
            socket_connect_timeout=5,
            health_check_interval=30,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        )
        self._publish = self.redis.register_script(PUBLISH_LUA)
        self._bury = self.redis.register_script(BURY_LUA)
        self._replay = self.redis.register_script(REPLAY_LUA)
        self._lock = threading.Lock()
        self._groups: set[str] = set()
        self._next_claim: dict[str, float] = {}
        self._claim_cursor: dict[str, str] = {}
        self._solo: dict[str, list[StreamEvent]] = {}
        self._backlog: tuple[float, int] = (0.0, 0)

    @property
    def consumer_name(self) -> str:
        """This reader in the group: ``<host>-<pid>`` unless named (tests)."""
        return self._name or consumer_identity()

    @property
    def stream(self) -> str:
        return self.settings.stream

    def _group(self, consumer: str) -> str:
        return self.settings.group if consumer == self.default_consumer else consumer

    def ensure_group(self, group: str) -> None:
        """Create the group (and the stream) if missing; from the stream's start, so records
        published before the first worker ever started are read too."""
        if group in self._groups:
            return
        try:
            self.redis.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(group)

    def ensure_consumer(self, consumer: str) -> None:
        self.ensure_group(self._group(consumer))

    # ---------------------------------------------------------------- producer
    def publish(self, tenant_id: str, records: Sequence[QueueRecord]) -> PublishResult:
        if not records:
            return PublishResult(0, 0)
        try:
            self._check_backlog()
            accepted_at = datetime.now(UTC).isoformat()
            prefix = f"{self.stream}:seen:"
            ttl = str(max(1, int(self.idempotency_window_s)))
            pipe = self.redis.pipeline(transaction=False)
            chunk = self.settings.publish_chunk
            # One token per call: a retry of this pipeline (redis-py retries after a broken
            # connection) is answered from the tokens instead of appending again.
            call = uuid.uuid4().hex
            for n, start in enumerate(range(0, len(records), chunk)):
                args: list[Any] = [prefix, ttl, tenant_id, accepted_at, CHUNK_TOKEN_TTL_S]
                for rec in records[start : start + chunk]:
                    args.append("" if rec.event_id is None else "=" + rec.event_id)
                    args.append(rec.payload)
                token = f"{self.stream}:chunk:{call}:{n}"
                self._publish(keys=[self.stream, token], args=args, client=pipe)
            results = pipe.execute()
        except REDIS_DOWN as exc:
            raise UnavailableError(
                f"event queue unreachable ({type(exc).__name__}); retry later",
                retry_after=self.settings.retry_after_s,
            ) from exc
        accepted = 0
        dups: list[int] = []
        for n, (added, chunk_dups) in enumerate(results):
            accepted += int(added)
            dups.extend(n * chunk + int(i) for i in chunk_dups)
        if accepted:
            self._notify()
        return PublishResult(accepted, len(records) - accepted, tuple(dups))

    def _check_backlog(self) -> None:
        checked, backlog = self._backlog
        now = time.monotonic()
        if now - checked >= self.settings.backlog_check_s:
            backlog = self.stats(consumer=self.default_consumer).depth
            self._backlog = (now, backlog)
        if backlog > self.settings.max_backlog:
            raise UnavailableError(
                f"event queue backlog is {backlog} records (limit {self.settings.max_backlog}); "
                "retry later",
                retry_after=self.settings.retry_after_s,
            )

    # ---------------------------------------------------------------- consumer
    def read(self, session: Session, *, consumer: str, limit: int) -> list[QueuedEvent]:
        group = self._group(consumer)
        if session is not None:
            # Take nothing while the consumer's database is down: a delivered record that
            # cannot be processed only collects deliveries towards the dead-letter stream.
            session.execute(text("SELECT 1"))
        try:
            return self._read(session, group, limit)
        except redis.exceptions.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or group vanished (a Redis without persistence restarted): recreate.
            log.warning("consumer group missing; creating it again", extra={"group": group})
            self._groups.discard(group)
            self.ensure_group(group)
            return []

    @property
    def blocking_reads(self) -> bool:
        """``read`` waits on the server (XREADGROUP BLOCK) while the stream is empty, so a reader
        needs no idle sleep of its own between batches (that sleep added ~1 s of latency)."""
        return bool(self.settings.block_ms)

    def _read(self, session: Session | None, group: str, limit: int) -> list[QueuedEvent]:
        self.ensure_group(group)
        if self._solo.get(group):
            return [self._next_solo(group)]
        now = time.monotonic()
        if now >= self._next_claim.get(group, 0.0):
            self._next_claim[group] = now + self.settings.claim_interval_s
            claimed = self._reclaim(session, group, limit)
            if claimed:
                return claimed
            if self._solo.get(group):
                return [self._next_solo(group)]
        block = self.settings.block_ms or None
        response = self.redis.xreadgroup(
            group, self.consumer_name, {self.stream: ">"}, count=limit, block=block
        )
        entries: list[Any] = []
        for _stream, items in _stream_items(response):
            entries.extend(items)
        return [_event(entry_id, fields) for entry_id, fields in entries]

    def _next_solo(self, group: str) -> StreamEvent:
        """The next record to retry alone. The others were taken over together with it and wait
        their turn; left idle they would be taken over again (counting one more delivery each,
        towards the dead-letter stream) before it comes. ``XCLAIM … JUSTID`` resets their idle
        time without counting a delivery."""
        waiting = self._solo[group]
        event = waiting.pop(0)
        if waiting:
            self.redis.xclaim(
                self.stream,
                group,
                self.consumer_name,
                0,
                [e.stream_id for e in waiting],
                justid=True,
            )
        return event

    def _reclaim(self, session: Session | None, group: str, limit: int) -> list[QueuedEvent]:
        """Take over records idle past ``claim_idle_s``; bury the ones past ``max_deliveries``,
        queue for solo retry the ones past ``solo_after_deliveries``, return the rest."""
        cfg = self.settings
        me = self.consumer_name
        cursor = self._claim_cursor.get(group, "0-0")
        reply = self.redis.xautoclaim(
            self.stream, group, me, int(cfg.claim_idle_s * 1000), cursor, count=limit
        )
        next_cursor, entries = _text(reply[0]), reply[1]
        self._claim_cursor[group] = next_cursor
        entries = [(eid, fields) for eid, fields in entries if fields]
        if not entries:
            return []
        ids = [_text(eid) for eid, _ in entries]
        counts = self._delivery_counts(group, me, ids)
        errors = self._errors(ids)
        batch: list[QueuedEvent] = []
        for (entry_id, fields), sid in zip(entries, ids, strict=True):
            deliveries = counts.get(sid, 1)
            if deliveries > cfg.max_deliveries:
                letter = self._move_to_dead(group, sid, deliveries, errors.get(sid), me)
                if letter is not None and session is not None:
                    record_dead_letter(session, letter)
            elif deliveries >= cfg.solo_after_deliveries:
                self._solo.setdefault(group, []).append(_event(entry_id, fields))
            else:
                batch.append(_event(entry_id, fields))
        log.info(
            "records taken over from other consumers",
            extra={"group": group, "claimed": len(entries), "batch": len(batch)},
        )
        return batch

    def _delivery_counts(self, group: str, consumer: str, ids: list[str]) -> dict[str, int]:
        ordered = sorted(ids, key=id_to_seq)
        rows = self.redis.xpending_range(
            self.stream, group, ordered[0], ordered[-1], 2 * len(ids) + 1000, consumername=consumer
        )
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    def _errors_key(self) -> str:
        return f"{self.stream}:errors"

    def _errors(self, ids: list[str]) -> dict[str, str]:
        values = self.redis.hmget(self._errors_key(), ids)
        return {sid: _text(v) for sid, v in zip(ids, values, strict=True) if v is not None}

    def failed(self, *, consumer: str, batch: Sequence[QueuedEvent], error: str) -> None:
        """Remember why ``batch`` failed; the error travels with a record to the dead-letter
        stream. (Optional hook for the pipeline: the queue works without it.)"""
        ids = [e.stream_id for e in batch if isinstance(e, StreamEvent)]
        if not ids:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hset(self._errors_key(), mapping=dict.fromkeys(ids, error[:2000]))
            pipe.expire(self._errors_key(), _ERRORS_TTL_S)
            pipe.execute()
        except REDIS_DOWN:
            log.warning("could not record the failure of a batch", exc_info=True)

    def _move_to_dead(
        self, group: str, stream_id: str, deliveries: int, error: str | None, consumer: str
    ) -> DeadLetter | None:
        """Bury ``stream_id``; the dead letter, or None when it was not pending any more."""
        reason = error or f"not acknowledged after {deliveries - 1} deliveries"
        dead_id = self._bury(
            keys=[self.stream, self.settings.dead_letter_stream],
            args=[group, stream_id, deliveries - 1, reason, consumer, _now_iso()],
        )
        self.redis.hdel(self._errors_key(), stream_id)
        if dead_id is None:
            return None
        QUEUE_DEAD_LETTERED.inc()
        log.error(
            "record moved to the dead-letter stream",
            extra={"stream_id": stream_id, "deliveries": deliveries - 1, "error": reason},
        )
        rows: Any = self.redis.xrange(self.settings.dead_letter_stream, dead_id, dead_id)
        return _dead_letter(rows[0][0], rows[0][1]) if rows else None

    def ack(self, session: Session, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        """Nothing inside the transaction: the XACK follows the commit (``acknowledged``)."""

    def acknowledged(self, *, consumer: str, batch: Sequence[QueuedEvent]) -> None:
        ids = [e.stream_id for e in batch if isinstance(e, StreamEvent)]
        if not ids:
            return
        try:
            self.redis.xack(self.stream, self._group(consumer), *ids)
        except REDIS_DOWN:
            # The results are committed; the records will be redelivered and produce nothing new.
            log.warning("XACK failed; the batch will be redelivered", exc_info=True)

    # ---------------------------------------------------------------- observing
    def _group_info(self, group: str) -> dict[str, Any] | None:
        try:
            groups = self.redis.xinfo_groups(self.stream)
        except redis.exceptions.ResponseError:  # no such stream yet
            return None
        for info in groups:
            if _text(info["name"]) == group:
                return dict(info)
        return None

    def stats(self, *, consumer: str) -> QueueStats:
        group = self._group(consumer)
        info = self._group_info(group)
        length = int(self.redis.xlen(self.stream))
        last = self.redis.xrevrange(self.stream, count=1)
        last_seq = id_to_seq(_text(last[0][0])) if last else 0
        if info is None:
            return QueueStats(length, 0.0, last_seq, 0)
        delivered = _text(info["last-delivered-id"])
        pending = int(info["pending"])
        lag = info.get("lag")
        undelivered = int(lag) if lag is not None else self._count_after(delivered)
        oldest: str | None = None
        if pending:
            summary = self.redis.xpending(self.stream, group)
            oldest = _text(summary["min"]) if summary.get("min") else None
        elif undelivered:
            first = self.redis.xrange(self.stream, min="(" + delivered, count=1)
            oldest = _text(first[0][0]) if first else None
        lag_s = 0.0
        if oldest is not None:
            lag_s = max(0.0, time.time() - int(oldest.partition("-")[0]) / 1000)
        return QueueStats(undelivered + pending, lag_s, last_seq, id_to_seq(delivered))

    def _count_after(self, stream_id: str) -> int:
        # Only when XINFO cannot compute the lag (rare); bounded, as an estimate.
        rows: Any = self.redis.xrange(self.stream, min="(" + stream_id, count=100_000)
        return len(rows)

    def purge(self, *, now: datetime, retention_s: float, idempotency_window_s: float) -> int:
        """Trim entries every group has acknowledged and older than ``retention_s``; forget
        consumers that hold nothing and were idle for ``consumer_forget_s``. (Idempotency keys
        expire by themselves.)"""
        try:
            groups = self.redis.xinfo_groups(self.stream)
        except redis.exceptions.ResponseError:
            return 0
        if not groups:
            return 0
        safe = id_to_seq(f"{int((now.timestamp() - retention_s) * 1000)}-0")
        for info in groups:
            name = _text(info["name"])
            boundary = id_to_seq(_text(info["last-delivered-id"])) + 1
            if int(info["pending"]):
                summary = self.redis.xpending(self.stream, name)
                boundary = min(boundary, id_to_seq(_text(summary["min"])))
            safe = min(safe, boundary)
            self._forget_consumers(name)
        return int(self.redis.xtrim(self.stream, minid=seq_to_id(safe), approximate=False))

    def _forget_consumers(self, group: str) -> None:
        forget_ms = self.settings.consumer_forget_s * 1000
        for c in self.redis.xinfo_consumers(self.stream, group):
            if int(c["pending"]) == 0 and int(c["idle"]) > forget_ms:
                self.redis.xgroup_delconsumer(self.stream, group, c["name"])

    # ---------------------------------------------------------------- dead letters
    def dead_letters(
        self, *, tenant_id: str | None, after: str | None = None, limit: int = 100
    ) -> list[DeadLetter]:
        """Dead letters oldest first, after the id ``after``; only ``tenant_id``'s if given.
        Reads until ``limit`` are found or the stream ends (tests, tools: unbounded)."""
        out: list[DeadLetter] = []
        while len(out) < limit:
            page, after = self.dead_letter_page(
                tenant_id=tenant_id, after=after, limit=limit - len(out), scan=PAGE_SCAN
            )
            out.extend(page)
            if after is None:
                break
        return out

    def dead_letter_page(
        self, *, tenant_id: str | None, after: str | None, limit: int, scan: int
    ) -> tuple[list[DeadLetter], str | None]:
        """At most ``limit`` dead letters of ``tenant_id`` after the id ``after``, reading at
        most ``scan`` entries of the stream (one XRANGE ... COUNT): the cost of a page does not
        grow with the stream or with the other tenants' letters. Returns the letters and the
        cursor to go on from (the last entry read), or None when the stream has no more."""
        start = "(" + after if after else "-"
        rows: Any = self.redis.xrange(self.settings.dead_letter_stream, min=start, count=scan)
        out: list[DeadLetter] = []
        for entry_id, fields in rows:
            letter = _dead_letter(entry_id, fields)
            if tenant_id is None or letter.tenant_id == tenant_id:
                out.append(letter)
                if len(out) >= limit:
                    return out, letter.id
        if len(rows) < scan:
            return out, None
        return out, _text(rows[-1][0])

    def dead_letter_count(self) -> int:
        """Entries in the dead-letter stream (every tenant's)."""
        return int(self.redis.xlen(self.settings.dead_letter_stream))

    def dead_letter(self, dead_id: str, *, tenant_id: str | None) -> DeadLetter:
        """One dead letter (``tenant_id``'s only, if given); NotFoundError otherwise."""
        try:
            rows: Any = self.redis.xrange(self.settings.dead_letter_stream, dead_id, dead_id)
        except redis.exceptions.ResponseError as exc:
            if "Invalid stream ID" in str(exc):
                raise NotFoundError(f"no dead letter {dead_id!r}") from exc
            raise
        letter = _dead_letter(rows[0][0], rows[0][1]) if rows else None
        if letter is None or (tenant_id is not None and letter.tenant_id != tenant_id):
            raise NotFoundError(f"no dead letter {dead_id!r}")
        return letter

    def replay_dead_letter(self, dead_id: str, *, tenant_id: str | None) -> str:
        """Put a dead letter back on the stream (same identity); return its new stream id."""
        marker = f"{self.settings.dead_letter_stream}:replayed:{dead_id}"
        try:
            new_id = self._replay(
                keys=[self.settings.dead_letter_stream, self.stream, marker],
                args=[dead_id, tenant_id or "", CHUNK_TOKEN_TTL_S],
            )
        except redis.exceptions.ResponseError as exc:
            if "Invalid stream ID" in str(exc):
                raise NotFoundError(f"no dead letter {dead_id!r}") from exc
            raise
        if new_id is None:
            raise NotFoundError(f"no dead letter {dead_id!r}")
        self._notify()
        return _text(new_id)

    def add_listener(self, listener: Listener) -> None:
        super().add_listener(listener)

    def close(self) -> None:
        self.redis.close()


def _stream_items(response: Any) -> list[tuple[Any, list[Any]]]:
    """XREADGROUP's reply as (stream, entries) pairs for both RESP2 (list) and RESP3 (dict)."""
    if not response:
        return []
    if isinstance(response, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in response.items()]
    return [(stream, items) for stream, items in response]


def _field(fields: dict[bytes, bytes], name: str) -> bytes | None:
    return fields.get(name.encode())


def _event(entry_id: Any, fields: dict[bytes, bytes]) -> StreamEvent:
    sid = _text(entry_id)
    origin = _field(fields, "origin")
    event_id = _field(fields, "event_id")
    accepted = _field(fields, "accepted_at")
    return StreamEvent(
        seq=id_to_seq(_text(origin) if origin else sid),
        tenant_id=_text(_field(fields, "tenant") or b""),
        event_id=_text(event_id) if event_id is not None else None,
        accepted_at=datetime.fromisoformat(_text(accepted)) if accepted else datetime.now(UTC),
        payload=bytes(_field(fields, "payload") or b""),
        stream_id=sid,
    )


def _dead_letter(entry_id: Any, fields: dict[bytes, bytes]) -> DeadLetter:
    event = _event(entry_id, fields)
    dead_at = _field(fields, "dead_at")
    return DeadLetter(
        id=_text(entry_id),
        tenant_id=event.tenant_id,
        event_id=event.event_id,
        accepted_at=event.accepted_at,
        origin=_text(_field(fields, "origin") or b""),
        deliveries=int(_field(fields, "deliveries") or 0),
        error=_text(_field(fields, "error") or b""),
        consumer=_text(_field(fields, "consumer") or b""),
        dead_at=datetime.fromisoformat(_text(dead_at)) if dead_at else event.accepted_at,
        payload=event.payload,
    )


def is_redis_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "unix://"))


def redis_queue_for(settings: Any) -> RedisStreamsQueue | None:
    """The Redis queue when ``settings.queue_url`` is a Redis URL, else None (SQL queue).
    Reads ``settings.redis_queue`` once the lead nests :class:`RedisQueueSettings` there."""
    url = getattr(settings, "queue_url", None)
    if not is_redis_url(url):
        return None
    cfg = getattr(settings, "redis_queue", None) or RedisQueueEnvSettings()
    return RedisStreamsQueue(
        str(url),
        cfg,
        consumer=settings.pipeline.consumer,
        idempotency_window_s=settings.ingest.idempotency_window_s,
    )
