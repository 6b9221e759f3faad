"""Shared builders for the correlation tests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.rule import SigmaRule

from vigil.detect.correlate import (
    CompiledCorrelation,
    CorrelationEngine,
    CorrelationHit,
    RuleRef,
    compile_correlations,
    load_collection,
    rule_ref_of,
)
from vigil.events.model import EventRecord

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def base_rule(name: str, rule_id: str | None = None, title: str | None = None) -> str:
    """A simple base rule document (its detection is irrelevant to the engine)."""
    id_line = f"id: {rule_id}\n" if rule_id else ""
    return (
        f"title: {title or name}\n{id_line}name: {name}\n"
        "logsource: {product: windows, service: security}\n"
        "detection: {selection: {EventID: 4625}, condition: selection}\n"
    )


def load(*docs: str) -> SigmaCollection:
    return load_collection(["\n---\n".join(docs)])


def compiled_of(collection: SigmaCollection) -> list[CompiledCorrelation]:
    return compile_correlations(
        [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]
    )


def engine_of(*docs: str, **kwargs: Any) -> tuple[CorrelationEngine, SigmaCollection]:
    collection = load(*docs)
    return CorrelationEngine(compiled_of(collection), **kwargs), collection


def ref(collection: SigmaCollection, name: str) -> RuleRef:
    rule = collection[name]
    assert isinstance(rule, SigmaRule | SigmaCorrelationRule)
    return rule_ref_of(rule)


def ev(seconds: float, record_id: int | None = None, /, **fields: Any) -> EventRecord:
    """An event ``seconds`` after T0."""
    return EventRecord(
        fields=dict(fields),
        source_file="test.evtx",
        record_id=record_id,
        timestamp=T0 + timedelta(seconds=seconds),
    )


def run(
    engine: CorrelationEngine, stream: Iterable[tuple[RuleRef, EventRecord]], *, flush: bool = True
) -> list[CorrelationHit]:
    hits: list[CorrelationHit] = []
    for rule, event in stream:
        hits.extend(engine.observe(rule, event))
    if flush:
        hits.extend(engine.flush())
    return hits


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
