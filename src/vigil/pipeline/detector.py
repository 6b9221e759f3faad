"""Queued events → detections: the Sigma engine, per-tenant correlations and tenant overrides.

Pure apart from the correlation state it keeps in memory (no database access): the worker
gives it a batch and the tenants' rule settings and stores what comes back.

Correlation state is per tenant (events of two tenants never correlate) and lives in memory:
windows that span a restart or a rule reload start afresh. Each detection gets a stable id
(:func:`detection_id`): the same tenant, rule and event — or correlation, group and window —
always give the same id, which is what makes redelivery harmless downstream.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from vigil.alerts.intake import DetectionRecord
from vigil.bus.queue import QueuedEvent
from vigil.detect.correlate import CorrelationEngine, CorrelationHit, RuleRef
from vigil.detect.sigma.loader import CompiledRule
from vigil.events.model import EventRecord
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
    #: queue seq of the event that made each record (None for correlations)
    seqs: list[int | None] = field(default_factory=list)
    events: int = 0
    undecodable: int = 0


def detection_id(tenant_id: str, kind: str, rule: str, subject: str) -> str:
    digest = hashlib.sha256(f"{tenant_id}\x1f{kind}\x1f{rule}\x1f{subject}".encode()).hexdigest()
    return digest[:40]


def _correlation_subject(hit: CorrelationHit) -> str:
    group = orjson.dumps(hit.group, option=orjson.OPT_SORT_KEYS, default=str).decode()
    return f"{group}|{hit.window_start.isoformat()}|{hit.window_end.isoformat()}"


class Detector:
    """Runs batches through the current rule snapshot."""

    def __init__(self, registry: RuleRegistry) -> None:
        self.registry = registry
        self._correlations: dict[str, CorrelationEngine] = {}
        self._version = -1

    def reset_correlations(self) -> None:
        """Forget correlation state (after a failed batch: its events will be seen again)."""
        self._correlations.clear()

    def _correlation_engine(self, snap: RuleSnapshot, tenant_id: str) -> CorrelationEngine | None:
        if snap.version != self._version:
            self._correlations.clear()
            self._version = snap.version
        if not snap.correlations:
            return None
        engine = self._correlations.get(tenant_id)
        if engine is None:
            engine = self._correlations[tenant_id] = CorrelationEngine(snap.correlations)
        return engine

    def detect(
        self, batch: Sequence[QueuedEvent], overrides: Mapping[str, TenantOverrides]
    ) -> DetectOutput:
        snap = self.registry.current
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
            correlations = self._correlation_engine(snap, item.tenant_id)
            for rule in matched:
                key = snap.key_of(rule)
                override = tenant.get(key)
                if override is not None and not override.enabled:
                    continue
                info = rule.info
                if not (
                    (info.id or "").lower() in suppressed
                    or (info.name is not None and info.name in suppressed)
                ):
                    out.records.append(self._rule_record(item, record, rule, key, override))
                    out.seqs.append(item.seq)
                if correlations is None:
                    continue
                ref = RuleRef(id=info.id, name=info.name, title=info.title)
                for hit in correlations.observe(ref, record):
                    ckey = snap.correlation_key(hit.rule.id, hit.rule.name, hit.rule.title)
                    coverride = tenant.get(ckey)
                    if coverride is not None and not coverride.enabled:
                        continue
                    out.records.append(self._correlation_record(item, hit, ckey, coverride))
                    out.seqs.append(None)
        return out

    @staticmethod
    def _rule_record(
        item: QueuedEvent,
        record: EventRecord,
        rule: CompiledRule,
        key: str,
        override: RuleOverride | None,
    ) -> DetectionRecord:
        ekey = event_key(item.seq, item.event_id)
        info = rule.info
        return DetectionRecord(
            detection_id=detection_id(item.tenant_id, "rule", key, ekey),
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
            correlation_id=_correlation_id(record.fields),
            suppression_window_s=override.suppression_window_s if override else None,
        )

    @staticmethod
    def _correlation_record(
        item: QueuedEvent, hit: CorrelationHit, key: str, override: RuleOverride | None
    ) -> DetectionRecord:
        last: dict[str, Any] = dict(hit.events[-1].event.fields) if hit.events else {}
        event_ids = tuple(dict.fromkeys(c.event.source_file for c in hit.events))
        return DetectionRecord(
            detection_id=detection_id(
                item.tenant_id, "correlation", key, _correlation_subject(hit)
            ),
            tenant_id=item.tenant_id,
            rule_id=key,
            rule_title=hit.rule.title,
            level=(override.level if override and override.level else hit.rule.level),
            tags=tuple(hit.rule.tags),
            kind="correlation",
            event_fields=last or dict(hit.group),
            event_ids=event_ids,
            event_time=hit.window_end,
            accepted_at=item.accepted_at,
            group=dict(hit.group),
            correlation_id=_correlation_id(last),
            suppression_window_s=override.suppression_window_s if override else None,
        )


def _correlation_id(fields: Mapping[str, Any]) -> str | None:
    value = fields.get("metadata.correlation_id")
    return value if isinstance(value, str) else None


__all__ = [
    "NO_OVERRIDES",
    "DetectOutput",
    "Detector",
    "RuleOverride",
    "TenantOverrides",
    "detection_id",
]
