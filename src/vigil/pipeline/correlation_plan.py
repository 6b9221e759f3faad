"""Which correlation state a base-rule match goes to: families, partitions, input bodies.

A **family** is a set of correlations that must share one engine: a correlation together with
every correlation it references or is referenced by (chains). Most families are one
correlation. Its ``key`` hashes the members' :func:`vigil.detect.correlate.definition_key`\\ s,
so state survives a rule reload exactly when the family's definitions did not change.

The **partition** of a match for a family is stable across processes (SHA-256, not Python's
salted ``hash``): ``(tenant, family, group-by values)`` for a one-correlation family, so the
groups of one busy correlation spread over partitions, and ``(tenant, family)`` for a chain,
whose outer correlation must see the hits of all inner groups. Every event of one group lands
in one partition whichever worker detected it; that is what keeps windows exact.

The **input body** (orjson) is what the correlator needs to rebuild the match: rule ref, event
time, event key, ``accepted_at`` and only the fields the family reads, plus the host/user
fields and correlation id that alerts take as entity and context.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from vigil.alerts.entity import HOST_FIELDS, USER_FIELDS
from vigil.detect.correlate import CompiledCorrelation, RuleRef, definition_key, rule_keys
from vigil.events.model import EventRecord

#: Fields every input keeps for the alert built from a correlation hit (entity, context).
CONTEXT_FIELDS = (*HOST_FIELDS, *USER_FIELDS, "metadata.correlation_id")


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(orjson.dumps(parts, default=str)).digest()


@dataclass(frozen=True, slots=True)
class Family:
    key: str
    correlations: tuple[CompiledCorrelation, ...]
    #: for each base rule key: the group-by field names of the one correlation that groups
    #: by them (None for chains, which partition by tenant and family only)
    group_fields: Mapping[str, tuple[str, ...]] | None


@dataclass(frozen=True, slots=True)
class CorrelationInputEvent:
    """One decoded input: the rule that matched and the event as the engine sees it."""

    seq: int
    tenant_id: str
    family: str
    rule: RuleRef
    event: EventRecord
    accepted_at: datetime


def families_of(correlations: Sequence[CompiledCorrelation]) -> list[Family]:
    """Group ``correlations`` (compile order: referenced before referencing) into families."""
    parent = list(range(len(correlations)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_key: dict[str, int] = {}
    for i, corr in enumerate(correlations):
        for key in rule_keys(corr.info.ref):
            by_key[key] = i
    for i, corr in enumerate(correlations):
        for ref, is_corr in zip(corr.rules, corr.rule_is_correlation, strict=True):
            if not is_corr:
                continue
            j = next((by_key[k] for k in rule_keys(ref) if k in by_key), None)
            if j is not None:
                parent[root(i)] = root(j)
    members: dict[int, list[CompiledCorrelation]] = {}
    for i, corr in enumerate(correlations):
        members.setdefault(root(i), []).append(corr)
    out: list[Family] = []
    for group in members.values():
        key = _digest(*sorted(definition_key(c) for c in group)).hex()[:32]
        grouping: dict[str, tuple[str, ...]] | None = None
        if len(group) == 1:
            (corr,) = group
            grouping = {}
            for ref, names in zip(corr.rules, corr.group_fields, strict=True):
                for rule_key in rule_keys(ref):
                    grouping[rule_key] = names
        out.append(Family(key, tuple(group), grouping))
    return out


def _lookup_keys(rule: RuleRef) -> Iterable[str]:
    # As the engine looks rules up: the id (lowercase) first, then the name.
    if rule.id:
        yield rule.id.lower()
    if rule.name:
        yield rule.name


class CorrelationPlan:
    """The families of one rule snapshot and where each match of their base rules goes."""

    def __init__(self, correlations: Sequence[CompiledCorrelation], *, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.partitions = partitions
        self.families = {family.key: family for family in families_of(correlations)}
        self._by_rule: dict[str, list[Family]] = {}
        fields: dict[str, dict[str, None]] = {}
        for family in self.families.values():
            for corr in family.correlations:
                for ref, is_corr, names in zip(
                    corr.rules, corr.rule_is_correlation, corr.group_fields, strict=True
                ):
                    if is_corr:
                        continue
                    for key in rule_keys(ref):
                        targets = self._by_rule.setdefault(key, [])
                        if all(known is not family for known in targets):
                            targets.append(family)
                        wanted = fields.setdefault(key, dict.fromkeys(CONTEXT_FIELDS))
                        wanted.update(dict.fromkeys(names))
                        wanted.update(dict.fromkeys(corr.value_fields))
        self._fields = {key: tuple(names) for key, names in fields.items()}

    def families_for(self, rule: RuleRef) -> tuple[list[Family], tuple[str, ...]]:
        """The families fed by matches of ``rule`` and the event fields they read."""
        for key in _lookup_keys(rule):
            found = self._by_rule.get(key)
            if found is not None:
                return found, self._fields[key]
        return [], ()

    def partition(
        self, family: Family, *, tenant_id: str, rule: RuleRef, fields: Mapping[str, Any]
    ) -> int:
        if self.partitions == 1:
            return 0
        values: list[Any] = []
        if family.group_fields is not None:
            names = next(
                (family.group_fields[k] for k in _lookup_keys(rule) if k in family.group_fields),
                (),
            )
            values = [fields.get(name) for name in names]
        digest = _digest(tenant_id, family.key, values)
        return int.from_bytes(digest[:8], "big") % self.partitions


def input_rows(
    plan: CorrelationPlan,
    *,
    tenant_id: str,
    rule: RuleRef,
    record: EventRecord,
    event_key: str,
    input_id: str,
    accepted_at: datetime,
) -> list[dict[str, Any]]:
    """Rows of ``correlation_inputs`` for one match (none if no correlation wants it)."""
    families, names = plan.families_for(rule)
    if not families or record.timestamp is None:  # the engine ignores untimed events
        return []
    source = record.fields
    fields = {name: source[name] for name in names if name in source}
    body = orjson.dumps(
        {
            "r": [rule.id, rule.name, rule.title],
            "t": record.timestamp.isoformat(),
            "f": fields,
            "e": event_key,
            "a": accepted_at.isoformat(),
        },
        default=str,
    )
    return [
        {
            "partition_no": plan.partition(family, tenant_id=tenant_id, rule=rule, fields=fields),
            "family": family.key,
            "input_id": input_id,
            "tenant_id": tenant_id,
            "body": body,
        }
        for family in families
    ]


def decode_input(seq: int, tenant_id: str, family: str, body: bytes) -> CorrelationInputEvent:
    data = orjson.loads(body)
    rule_id, name, title = data["r"]
    event_key: str = data["e"]
    return CorrelationInputEvent(
        seq=seq,
        tenant_id=tenant_id,
        family=family,
        rule=RuleRef(rule_id, name, title),
        event=EventRecord(
            fields=data["f"],
            source_file=event_key,
            timestamp=datetime.fromisoformat(data["t"]),
        ),
        accepted_at=datetime.fromisoformat(data["a"]),
    )
