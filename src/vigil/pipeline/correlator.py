"""The correlator: Sigma correlations over the inputs of all detection workers, one process per
partition, with state that survives restarts, rule reloads and take-overs.

Detection workers append *correlation inputs* (base-rule matches that a correlation needs;
:mod:`vigil.pipeline.correlation_plan`) in the transaction of their detections. Inputs are
partitioned by (tenant, correlation family, group-by values), so all events of one group are in
one partition whichever worker saw them. For each partition it owns
(:mod:`vigil.pipeline.partition_locks`) the correlator repeats one step in one transaction:

1. lock the partition's ``correlation_state`` row; if its ``position`` is not the one this
   process last committed (first step, take-over, a failed step, a second owner) rebuild the
   in-memory engines: restore the stored snapshot and continue from its ``snapshot_position``;
2. read the inputs after the in-memory position in ``seq`` order and feed them to the engine of
   their (tenant, family) — one :class:`vigil.detect.correlate.CorrelationEngine` each;
3. fence on the partition's lease (:meth:`vigil.pipeline.partition_locks.PartitionLocks.fence`:
   an owner frozen past its lease and taken over writes nothing and drops the partition), record
   the hits as detections through the alerts sink, advance ``position``, and every
   ``snapshot_interval_s`` (and on a clean stop or hand-over) write the engines' snapshot with
   the position it was taken at; commit.

After a crash the inputs between the snapshot and the committed position are fed again. The
engine is deterministic and correlation detection ids are a hash of (tenant, correlation,
group, window), so those replayed hits are found already recorded and change nothing: no input
is lost, no alert doubled. Inputs already covered by a snapshot are pruned after
``correlation_input_retention_s``.

On a rule reload each engine whose family is unchanged (same definitions,
:func:`vigil.pipeline.correlation_plan.families_of`) is rebuilt on the new rules and takes its
state over; engines of changed or removed families are dropped, new families start empty.
Changing ``correlation_partitions`` regroups the state: snapshots made under another count are
not restored (windows start afresh once).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from vigil.alerts.intake import DetectionRecord
from vigil.bus.queue_gate import NoGate, WriteGate
from vigil.detect.correlate import CorrelationEngine, CorrelationHit
from vigil.obs.failures import FailureLog
from vigil.pipeline import correlation_store as store
from vigil.pipeline.correlation_plan import CorrelationInputEvent, CorrelationPlan
from vigil.pipeline.detector import (
    NO_OVERRIDES,
    RuleOverride,
    TenantOverrides,
    correlation_id_of,
    detection_id,
)
from vigil.pipeline.models import CorrelationState
from vigil.pipeline.partition_locks import PartitionLocks
from vigil.pipeline.rules import RuleRegistry, RuleSnapshot
from vigil.pipeline.service import store_detections
from vigil.pipeline.worker import BatchReport, DetectionSink, OverridesCache, apply_report
from vigil.runtime import LoopWorker
from vigil.store.tenancy import system_session

log = logging.getLogger("vigil.pipeline")


class PartitionLost(Exception):
    """The partition's lease was taken over by another correlator: drop it, write nothing."""


SNAPSHOT_FORMAT = 1


def correlation_subject(hit: CorrelationHit) -> str:
    group = orjson.dumps(hit.group, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return f"{group}|{hit.window_start.isoformat()}|{hit.window_end.isoformat()}"


def correlation_record(
    *,
    tenant_id: str,
    hit: CorrelationHit,
    key: str,
    override: RuleOverride | None,
    accepted_at: datetime,
) -> DetectionRecord:
    """The detection of a correlation hit; its id depends only on tenant, correlation, group
    and window, so the same hit found again (a replay after a crash) is the same detection."""
    last: dict[str, Any] = dict(hit.events[-1].event.fields) if hit.events else {}
    return DetectionRecord(
        detection_id=detection_id(tenant_id, "correlation", key, correlation_subject(hit)),
        tenant_id=tenant_id,
        rule_id=key,
        rule_title=hit.rule.title,
        level=(override.level if override and override.level else hit.rule.level),
        tags=tuple(hit.rule.tags),
        kind="correlation",
        event_fields=last or dict(hit.group),
        event_ids=tuple(dict.fromkeys(c.event.source_file for c in hit.events)),
        event_time=hit.window_end,
        accepted_at=accepted_at,
        group=dict(hit.group),
        correlation_id=correlation_id_of(last),
        suppression_window_s=override.suppression_window_s if override else None,
    )


def encode_snapshot(partitions: int, engines: dict[tuple[str, str], CorrelationEngine]) -> bytes:
    data = {
        "format": SNAPSHOT_FORMAT,
        "partitions": partitions,
        "engines": [
            [tenant, family, engine.snapshot()]
            for (tenant, family), engine in engines.items()
            if engine.state_size()
        ],
    }
    try:
        return orjson.dumps(data)
    except TypeError:  # an integer field value beyond 64 bits: the slow encoder takes it
        return json.dumps(data).encode()


@dataclass
class _Partition:
    number: int
    #: input seq the engines have seen up to
    position: int = 0
    #: the row's position as this process last read or wrote it; None: rebuild first
    committed: int | None = None
    snapshot_position: int = 0
    snapshot_at: float = field(default_factory=time.monotonic)
    engines: dict[tuple[str, str], CorrelationEngine] = field(default_factory=dict)


class Correlator:
    """Owns partitions and runs their steps (a :class:`vigil.runtime.BackgroundWorker`)."""

    name = "correlator"

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        registry: RuleRegistry,
        sink: DetectionSink,
        locks: PartitionLocks,
        partitions: int = 1,
        gate: WriteGate | NoGate | None = None,
        batch_size: int = 1000,
        snapshot_interval_s: float = 30.0,
        poll_s: float = 0.5,
        rebalance_interval_s: float = 2.0,
        lease_s: float = 15.0,
        retention_s: float = 3600.0,
        prune_interval_s: float = 60.0,
        overrides_refresh_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self.registry = registry
        self.sink = sink
        self.locks = locks
        self.partitions = partitions
        self.gate = gate or NoGate()
        self.batch_size = batch_size
        self.snapshot_interval_s = snapshot_interval_s
        self.poll_s = poll_s
        # Renewing happens at each rebalance: three chances before the lease runs out.
        self.rebalance_interval_s = min(rebalance_interval_s, lease_s / 3)
        self.retention_s = retention_s
        self.prune_interval_s = prune_interval_s
        self.overrides = OverridesCache(overrides_refresh_s)
        self.owner = f"{socket.gethostname()}-{os.getpid()}"
        self._parts: dict[int, _Partition] = {}
        self._plan: CorrelationPlan | None = None
        self._rules_version = -1
        self._next_rebalance = 0.0
        self._next_prune = time.monotonic() + prune_interval_s
        # Steps run in the loop's thread; stop() takes this lock for the final snapshot, so
        # the two never touch the engines at once.
        self._lock = threading.Lock()
        # Failures (the database down) logged once with a traceback, then a line per back-off.
        self._loop = LoopWorker(
            "correlator", FailureLog(log, "correlator step").guard(self._loop_step)
        )
        self.inputs = 0
        self.hits = 0
        self.skipped_inputs = 0

    # ------------------------------------------------------------------ worker protocol
    def wake(self) -> None:
        self._loop.wake()

    def start(self) -> None:
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop stepping, write every owned partition's snapshot and hand the partitions on."""
        self._loop.stop(timeout)
        if not self._lock.acquire(timeout=timeout):
            # A step still runs: its partitions go to the next owner, who replays the inputs.
            log.warning("correlator did not stop in time; no final snapshot")
            return
        try:
            self.release_all()
        finally:
            self._lock.release()

    def _loop_step(self) -> float:
        with self._lock:
            busy = self.run_once() > 0
        return 0.0 if busy else self.poll_s

    def status(self) -> dict[str, Any]:
        return {
            **self._loop.status(),
            "partitions": sorted(self._parts),
            "positions": {str(n): p.position for n, p in sorted(self._parts.items())},
            "inputs": self.inputs,
            "hits": self.hits,
            "skipped_inputs": self.skipped_inputs,
        }

    # ------------------------------------------------------------------ steps
    def run_once(self) -> int:
        """Rebalance if due, then one batch per owned partition; returns inputs processed."""
        now = time.monotonic()
        if now >= self._next_rebalance:
            self._next_rebalance = now + self.rebalance_interval_s
            self.rebalance()
        snap = self.registry.current
        processed = 0
        for part in list(self._parts.values()):
            try:
                processed += self._step(part, snap)
            except PartitionLost:
                self._drop(part.number)
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_interval_s
            self.prune()
        return processed

    def checkpoint(self) -> None:
        """Write every owned partition's snapshot now."""
        snap = self.registry.current
        for part in list(self._parts.values()):
            try:
                self._step(part, snap, snapshot=True)
            except PartitionLost:
                self._drop(part.number)

    def release_all(self) -> None:
        for number in list(self._parts):
            self._release(number)
        self.locks.close()

    def rebalance(self) -> None:
        """Keep ``ceil(partitions / live members)`` partitions: take free ones, hand on extras."""
        for number in self.locks.renew():
            self._drop(number)  # taken over while this process did not renew (frozen)
        target = math.ceil(self.partitions / self.locks.members())
        while len(self._parts) > target:
            self._release(max(self._parts))
        if len(self._parts) >= target:
            return
        start = random.randrange(self.partitions)
        for offset in range(self.partitions):
            number = (start + offset) % self.partitions
            if number in self._parts or not self.locks.try_acquire(number):
                continue
            try:
                with self.gate.hold(), system_session(self.sessions) as session:
                    store.ensure_state(
                        session,
                        partition=number,
                        partitions=self.partitions,
                        now=datetime.now(UTC),
                    )
                    session.commit()
            except BaseException:
                self.locks.release(number)
                raise
            self._parts[number] = _Partition(number)
            log.info("correlation partition taken", extra={"partition": number})
            if len(self._parts) >= target:
                return

    def _drop(self, number: int) -> None:
        """Forget a partition that another correlator took over (no final snapshot: its state
        here is stale)."""
        if self._parts.pop(number, None) is not None:
            log.warning("correlation partition taken over; dropped", extra={"partition": number})

    def _release(self, number: int) -> None:
        part = self._parts[number]
        try:
            if part.committed is not None:
                self._step(part, self.registry.current, snapshot=True)
        except PartitionLost:
            log.warning("correlation partition taken over before its final snapshot")
        except Exception:
            log.exception("final correlation snapshot failed", extra={"partition": number})
        finally:
            del self._parts[number]
            self.locks.release(number)
            log.info("correlation partition released", extra={"partition": number})

    def _sync_rules(self, snap: RuleSnapshot) -> None:
        if snap.version == self._rules_version:
            return
        plan = CorrelationPlan(snap.correlations, partitions=self.partitions)
        for part in self._parts.values():
            part.engines = self._carry_over(part.engines, plan)
        self._plan = plan
        self._rules_version = snap.version

    @staticmethod
    def _carry_over(
        engines: dict[tuple[str, str], CorrelationEngine], plan: CorrelationPlan
    ) -> dict[tuple[str, str], CorrelationEngine]:
        """Engines of unchanged families, rebuilt on the new rules with their state."""
        kept: dict[tuple[str, str], CorrelationEngine] = {}
        for (tenant, key), engine in engines.items():
            family = plan.families.get(key)
            if family is None:
                continue
            fresh = CorrelationEngine(family.correlations)
            fresh.restore(engine.snapshot())
            kept[(tenant, key)] = fresh
        return kept

    def _step(self, part: _Partition, snap: RuleSnapshot, *, snapshot: bool = False) -> int:
        """One batch of ``part`` in one transaction (see the module docstring); ``snapshot``
        writes the snapshot even if it is not due. Returns the inputs processed."""
        self._sync_rules(snap)
        if not snapshot and not self._due(part) and not self._has_inputs(part):
            return 0  # the usual idle poll: one query, no locks
        session = system_session(self.sessions)
        try:
            self.locks.guard(session)
            row = store.lock_state(session, partition=part.number)
            if row is None:
                raise RuntimeError(f"correlation partition {part.number} has no state row")
            if part.committed != row.position:
                self._load(part, row)
            inputs = store.read_inputs(
                session, partition=part.number, after=part.position, limit=self.batch_size
            )
            due = snapshot or self._due(part)
            if not inputs and not due:
                session.rollback()
                return 0
            records = self._feed(part, inputs, snap, self.overrides.current(session))
            position = inputs[-1].seq if inputs else part.position
            # Encoded before the write gate: on SQLite detection waits while the gate is held.
            blob = encode_snapshot(self.partitions, part.engines) if due else None
            with self.gate.hold():
                if not self.locks.fence(session, part.number):
                    raise PartitionLost(part.number)
                now = datetime.now(UTC)
                fresh = store_detections(
                    session, records=records, seqs=[None] * len(records), now=now
                )
                if fresh:
                    self.sink(session, detections=fresh, now=now)
                row.position = max(row.position, position)
                if blob is not None:
                    row.snapshot = blob
                    row.snapshot_position = position
                    row.snapshot_at = now
                    row.partitions = self.partitions
                row.owner = self.owner
                row.updated_at = now
                session.commit()
        except BaseException:
            session.rollback()
            part.committed = None  # the engines may be ahead of the database: rebuild
            raise
        finally:
            session.close()
        part.position = position
        part.committed = row.position
        if due:
            part.snapshot_position = position
            part.snapshot_at = time.monotonic()
        self.inputs += len(inputs)
        self.hits += len(records)
        if fresh:  # into this process's metrics (relayed to the server by a detection child)
            report = BatchReport()
            report.count(fresh, committed=datetime.now(UTC))
            apply_report(report)
        return len(inputs)

    def _due(self, part: _Partition) -> bool:
        """A periodic snapshot is due."""
        return (
            part.position > part.snapshot_position
            and time.monotonic() - part.snapshot_at >= self.snapshot_interval_s
        )

    def _has_inputs(self, part: _Partition) -> bool:
        """Whether a step may have work: inputs after the position, or the partition's state
        not loaded yet. Read without the row lock, so a step that finds nothing costs one
        query instead of a locking transaction."""
        if part.committed is None:
            return True
        with system_session(self.sessions) as session:
            return store.has_inputs(session, partition=part.number, after=part.position)

    def _load(self, part: _Partition, row: CorrelationState) -> None:
        """Rebuild the partition's engines from its stored snapshot."""
        plan = self._plan
        part.engines = {}
        part.position = row.snapshot_position
        part.committed = row.position
        part.snapshot_position = row.snapshot_position
        part.snapshot_at = time.monotonic()
        if row.snapshot is None or plan is None:
            return
        try:
            data = orjson.loads(row.snapshot)
            if data.get("format") != SNAPSHOT_FORMAT or data.get("partitions") != self.partitions:
                raise ValueError("snapshot of another format or partition count")
            for tenant, key, saved in data["engines"]:
                family = plan.families.get(key)
                if family is None:
                    continue
                engine = CorrelationEngine(family.correlations)
                engine.restore(saved)
                part.engines[(tenant, key)] = engine
        except Exception:
            # Replaying from an unusable snapshot's position would count a group's events
            # twice or not at all; start afresh at the committed position instead.
            log.exception(
                "correlation snapshot not usable; windows start afresh",
                extra={"partition": part.number},
            )
            part.engines = {}
            part.position = row.position
        log.info(
            "correlation state restored",
            extra={
                "partition": part.number,
                "snapshot_position": row.snapshot_position,
                "position": row.position,
                "engines": len(part.engines),
            },
        )

    def _feed(
        self,
        part: _Partition,
        inputs: list[CorrelationInputEvent],
        snap: RuleSnapshot,
        overrides: dict[str, TenantOverrides],
    ) -> list[DetectionRecord]:
        plan = self._plan
        records: list[DetectionRecord] = []
        for item in inputs:
            family = plan.families.get(item.family) if plan is not None else None
            if family is None:  # written under rules this process does not have (a reload)
                self.skipped_inputs += 1
                continue
            engine = part.engines.get((item.tenant_id, item.family))
            if engine is None:
                engine = CorrelationEngine(family.correlations)
                part.engines[(item.tenant_id, item.family)] = engine
            tenant = overrides.get(item.tenant_id, NO_OVERRIDES)
            for hit in engine.observe(item.rule, item.event):
                key = snap.correlation_key(hit.rule.id, hit.rule.name, hit.rule.title)
                override = tenant.get(key)
                if override is not None and not override.enabled:
                    continue
                records.append(
                    correlation_record(
                        tenant_id=item.tenant_id,
                        hit=hit,
                        key=key,
                        override=override,
                        accepted_at=item.accepted_at,
                    )
                )
        return records

    def prune(self) -> int:
        """Delete inputs that owned partitions' snapshots cover, past retention."""
        before = datetime.now(UTC) - timedelta(seconds=self.retention_s)
        removed = 0
        for part in list(self._parts.values()):
            with self.gate.hold(), system_session(self.sessions) as session:
                removed += store.prune_inputs(
                    session, partition=part.number, upto=part.snapshot_position, before=before
                )
                if part.number == 0:
                    removed += store.prune_orphans(
                        session, partitions=self.partitions, before=before
                    )
        if removed:
            log.info("correlation inputs pruned", extra={"removed": removed})
        return removed


def build_correlator(
    settings: Any,
    *,
    engine: Any,
    sessions: sessionmaker[Session],
    registry: RuleRegistry,
    sink: DetectionSink,
    gate: WriteGate | NoGate | None = None,
) -> Correlator:
    """The correlator of a process that detects (``vigil serve`` child, thread or worker)."""
    from vigil.pipeline.partition_locks import locks_for

    cfg = settings.pipeline
    return Correlator(
        sessions=sessions,
        registry=registry,
        sink=sink,
        locks=locks_for(engine, lease_s=cfg.correlation_lease_s),
        partitions=cfg.correlation_partitions,
        gate=gate,
        batch_size=cfg.batch_size,
        snapshot_interval_s=cfg.correlation_snapshot_interval_s,
        poll_s=cfg.correlation_poll_s,
        lease_s=cfg.correlation_lease_s,
        retention_s=cfg.correlation_input_retention_s,
        prune_interval_s=cfg.purge_interval_s,
        overrides_refresh_s=cfg.overrides_refresh_s,
    )
