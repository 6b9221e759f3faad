"""Queued events → detections and correlation inputs: the Sigma engine and tenant overrides.

Pure (no database access, no state across batches): the worker gives it a batch and the
tenants' rule settings and stores what comes back.

Correlations are not evaluated here. For every match of a base rule that a correlation
references (and the tenant has not disabled), :meth:`Detector.detect` returns *correlation
inputs* (:func:`vigil.pipeline.correlation_plan.input_rows`): the rule, the event time and the
few fields the correlations read, routed to a partition by (tenant, correlation family, group-by
values). The worker appends them in the transaction of its detections, and the correlator
(:mod:`vigil.pipeline.correlator`) evaluates them in one process per partition, with its state
snapshotted to the database. So windows survive restarts and rule reloads, and events of one
group count together whichever worker detected them.

Each detection gets a stable id (:func:`detection_id`): the same tenant, rule and event — or
correlation, group and window — always give the same id, which is what makes redelivery
harmless downstream. The id of a base match is also its correlation input's idempotency key.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vigil.alerts.intake import DetectionRecord
from vigil.alerts.prepare import prepare
from vigil.bus.queue import QueuedEvent
from vigil.detect.correlate import RuleRef
from vigil.detect.sigma.loader import CompiledRule
from vigil.events.model import EventRecord
from vigil.pipeline.correlation_plan import CorrelationPlan, input_rows
from vigil.pipeline.records import event_key, to_record
from vigil.pipeline.rules import RuleRegistry, RuleSnapshot

log = logging.getLogger("vigil.pipeline")


@dataclass(frozen=True, slots=True)
class RuleOverride:
    enabled: bool = True
    level: str | None = None
    suppression_window_s: float | None = None


@dataclass(frozen=True, slots=True)
class TenantOverrides:
    """A tenant's rule settings, by rule key."""

    rules: Mapping[str, RuleOverride] = field(default_factory=dict)

    def get(self, key: str) -> RuleOverride | None:
        return self.rules.get(key)


NO_OVERRIDES = TenantOverrides()


@dataclass(slots=True)
class DetectOutput:
    records: list[DetectionRecord] = field(default_factory=list)
    #: queue seq of the event that made each record
    seqs: list[int | None] = field(default_factory=list)
    #: rows for ``correlation_inputs`` (see the module docstring)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    undecodable: int = 0


def detection_id(tenant_id: str, kind: str, rule: str, subject: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}\x1f{kind}\x1f{rule}\x1f{subject}".encode()).hexdigest()
    return digest[:40]


class Detector:
    """Runs batches through the current rule snapshot."""

    def __init__(self, registry: RuleRegistry, *, partitions: int = 1) -> None:
        self.registry = registry
        #: correlation partitions (``pipeline.correlation_partitions``); every process that
        #: detects must use the count the correlators use
        self.partitions = partitions
        self._plan: CorrelationPlan | None = None
        self._plan_of: tuple[int, int] = (-1, 0)

    def plan(self, snap: RuleSnapshot) -> CorrelationPlan | None:
        """The correlation plan of ``snap`` (built once per rule version)."""
        if not snap.correlations:
            return None
        if self._plan is None or self._plan_of != (snap.version, self.partitions):
            self._plan = CorrelationPlan(snap.correlations, partitions=self.partitions)
            self._plan_of = (snap.version, self.partitions)
        return self._plan

    def detect(
        self, batch: Sequence[QueuedEvent], overrides: Mapping[str, TenantOverrides]
    ) -> DetectOutput:
        snap = self.registry.current
        plan = self.plan(snap)
        out = DetectOutput()
        suppressed = snap.suppressed
        for item in batch:
            try:
                record = to_record(item.payload, seq=item.seq, event_id=item.event_id)
            except Exception:
                # Ingest validated the record; a payload that no longer decodes is reported and
                # skipped rather than blocking the queue behind it forever.
                log.exception("undecodable queued record", extra={"seq": item.seq})
                out.undecodable += 1
                continue
            out.events += 1
            matched = snap.engine.match(record)
            if not matched:
                continue
            tenant = overrides.get(item.tenant_id, NO_OVERRIDES)
            ekey = event_key(item.seq, item.event_id)
            for rule in matched:
                key = snap.key_of(rule)
                override = tenant.get(key)
                if override is not None and not override.enabled:
                    continue
                info = rule.info
                base_id = detection_id(item.tenant_id, "rule", key, ekey)
                if not (
                    (info.id or "").lower() in suppressed
                    or (info.name is not None and info.name in suppressed)
                ):
                    out.records.append(
                        self._rule_record(item, record, rule, key, base_id, override)
                    )
                    out.seqs.append(item.seq)
                if plan is not None:
                    out.inputs.extend(
                        input_rows(
                            plan,
                            tenant_id=item.tenant_id,
                            rule=RuleRef(id=info.id, name=info.name, title=info.title),
                            record=record,
                            event_key=ekey,
                            input_id=base_id,
                            accepted_at=item.accepted_at,
                        )
                    )
        return out

    @staticmethod
    def _rule_record(
        item: QueuedEvent,
        record: EventRecord,
        rule: CompiledRule,
        key: str,
        base_id: str,
        override: RuleOverride | None,
    ) -> DetectionRecord:
        ekey = event_key(item.seq, item.event_id)
        info = rule.info
        detection = DetectionRecord(
            detection_id=base_id,
            tenant_id=item.tenant_id,
            rule_id=key,
            rule_title=info.title,
            level=(override.level if override and override.level else info.level),
            tags=info.tags,
            kind="rule",
            event_fields=record.fields,
            event_ids=(ekey,),
            event_time=record.timestamp,
            accepted_at=item.accepted_at,
            correlation_id=correlation_id_of(record.fields),
            suppression_window_s=override.suppression_window_s if override else None,
        )
        # Entity, fingerprint and context now, while no write lock is held (the alerts domain
        # reads them back inside the batch's transaction).
        prepare(detection)
        return detection


def correlation_id_of(fields: Mapping[str, Any]) -> str | None:
    """The ``metadata.correlation_id`` an event carries (envelopes), for grouping alerts."""
    value = fields.get("metadata.correlation_id")
    return value if isinstance(value, str) else None


__all__ = [
    "NO_OVERRIDES",
    "DetectOutput",
    "Detector",
    "RuleOverride",
    "TenantOverrides",
    "correlation_id_of",
    "detection_id",
]
