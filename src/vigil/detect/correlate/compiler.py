"""Compile pySigma correlation rules into the engine's flat, validated representation."""

from __future__ import annotations

import enum
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.rule import SigmaRule

from vigil.detect.correlate.errors import CorrelationError
from vigil.detect.correlate.model import CorrelationRuleInfo, RuleRef

#: Custom top-level attribute in which :func:`load_collection` keeps a range condition
#: (``gt: 100`` + ``lte: 200``) that pySigma 2.0.1 cannot parse itself.
RANGE_CONDITION_ATTRIBUTE = "x-vigil-correlation-condition"

#: Timespan units allowed by the specification (``number + lowercase letter``).
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CorrelationKind(enum.Enum):
    EVENT_COUNT = "event_count"
    VALUE_COUNT = "value_count"
    TEMPORAL = "temporal"
    TEMPORAL_ORDERED = "temporal_ordered"
    VALUE_SUM = "value_sum"
    VALUE_AVG = "value_avg"
    VALUE_PERCENTILE = "value_percentile"
    VALUE_MEDIAN = "value_median"


class Op(enum.Enum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EQ = "eq"
    NEQ = "neq"

    def test(self, value: float, threshold: float) -> bool:
        if self is Op.GT:
            return value > threshold
        if self is Op.GTE:
            return value >= threshold
        if self is Op.LT:
            return value < threshold
        if self is Op.LTE:
            return value <= threshold
        if self is Op.EQ:
            return value == threshold
        return value != threshold


_OPS = {op.value: op for op in Op}
_NUMERIC_KINDS = frozenset(
    {
        CorrelationKind.VALUE_SUM,
        CorrelationKind.VALUE_AVG,
        CorrelationKind.VALUE_PERCENTILE,
        CorrelationKind.VALUE_MEDIAN,
    }
)
#: Aggregates that can only grow while events are added to a window (value_sum counts as
#: such for the sliding "some window satisfies" evaluation, see the engine docs).
_CROSSING_KINDS = frozenset(
    {
        CorrelationKind.EVENT_COUNT,
        CorrelationKind.VALUE_COUNT,
        CorrelationKind.TEMPORAL,
        CorrelationKind.TEMPORAL_ORDERED,
        CorrelationKind.VALUE_SUM,
    }
)


@dataclass(frozen=True, slots=True)
class Condition:
    """A conjunction of ``(operator, threshold)`` terms."""

    terms: tuple[tuple[Op, float], ...]

    def test(self, value: float) -> bool:
        return all(op.test(value, threshold) for op, threshold in self.terms)

    def describe(self) -> str:
        return " and ".join(f"{op.value} {threshold:g}" for op, threshold in self.terms)


@dataclass(frozen=True, slots=True)
class CompiledCorrelation:
    """One correlation rule ready for the engine.

    ``rules[i]`` is the i-th referenced rule (a base rule or another correlation, see
    ``rule_is_correlation``); ``group_fields[i]`` are the event field names, after applying
    ``aliases``, that make up the group-by key for events of ``rules[i]``.
    """

    info: CorrelationRuleInfo
    kind: CorrelationKind
    rules: tuple[RuleRef, ...]
    rule_is_correlation: tuple[bool, ...]
    group_by: tuple[str, ...]
    group_fields: tuple[tuple[str, ...], ...]
    timespan: float
    condition: Condition
    value_fields: tuple[str, ...]
    percentile: float | None
    generate: bool
    #: True: evaluated on every event over sliding windows and fired as soon as the condition
    #: holds; False: evaluated when an anchored window closes (see the engine docs).
    crossing: bool

    @property
    def label(self) -> str:
        return _label(self.info.id, self.info.title)


def _label(rule_id: str | None, title: str) -> str:
    return f"{rule_id or '-'} ({title!r})"


def rule_ref_of(rule: SigmaRule | SigmaCorrelationRule) -> RuleRef:
    """The :class:`RuleRef` the matcher uses for ``rule`` (id as lowercase UUID string)."""
    return RuleRef(
        str(rule.id).lower() if rule.id is not None else None,
        rule.name,
        rule.title,
    )


def rule_keys(ref: RuleRef) -> tuple[str, ...]:
    """Keys under which a rule can be referenced: its id (lowercase) and its name."""
    keys: list[str] = []
    if ref.id:
        keys.append(ref.id.lower())
    if ref.name:
        keys.append(ref.name)
    return tuple(keys)


def load_collection(texts: Iterable[str]) -> SigmaCollection:
    """Parse Sigma YAML documents into a resolved :class:`SigmaCollection`.

    Unlike ``SigmaCollection.from_yaml`` this accepts correlation range conditions (several
    operators combined by AND, e.g. ``gt: 100`` + ``lte: 200``), which the specification allows
    but pySigma 2.0.1 rejects: the full condition is kept under
    :data:`RANGE_CONDITION_ATTRIBUTE` and read back by :func:`compile_correlations`.
    """
    docs: list[Any] = []
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            docs.append(stash_range_condition(doc))
    return SigmaCollection.from_dicts(docs)


def stash_range_condition(doc: Any) -> Any:
    if not isinstance(doc, dict):
        return doc
    corr = doc.get("correlation")
    if not isinstance(corr, dict):
        return doc
    cond = corr.get("condition")
    if not isinstance(cond, dict):
        return doc
    ops = [key for key in cond if key in _OPS]
    if len(ops) <= 1:
        return doc
    doc = dict(doc)
    doc[RANGE_CONDITION_ATTRIBUTE] = {key: cond[key] for key in ops}
    corr = dict(corr)
    corr["condition"] = {key: value for key, value in cond.items() if key not in ops[1:]}
    doc["correlation"] = corr
    return doc


def compile_correlations(rules: Sequence[SigmaCorrelationRule]) -> list[CompiledCorrelation]:
    """Compile correlation rules whose references are resolved (``SigmaCollection`` does it).

    Correlations referenced by the given ones (chains) are compiled too even when not listed.
    The result is ordered so that every correlation comes after those it references.

    Raises:
        CorrelationError: a rule is invalid or uses something the engine does not support.
    """
    ordered: list[SigmaCorrelationRule] = []
    state: dict[int, int] = {}  # id(rule) -> 1 visiting, 2 done

    def visit(rule: SigmaCorrelationRule, path: tuple[str, ...]) -> None:
        mark = state.get(id(rule))
        label = _label(str(rule.id) if rule.id else None, rule.title)
        if mark == 2:
            return
        if mark == 1:
            raise CorrelationError(label, "reference cycle: " + " -> ".join((*path, label)))
        state[id(rule)] = 1
        for ref in _references(rule):
            target = ref.rule
            if isinstance(target, SigmaCorrelationRule):
                visit(target, (*path, label))
        state[id(rule)] = 2
        ordered.append(rule)

    for rule in rules:
        visit(rule, ())
    return [_compile_one(rule) for rule in ordered]


def _references(rule: SigmaCorrelationRule) -> list[Any]:
    label = _label(str(rule.id) if rule.id else None, rule.title)
    refs = list(rule.referenced_rules) or list(rule.rules or [])
    if not refs:
        raise CorrelationError(label, "no referenced rules")
    for ref in refs:
        if not hasattr(ref, "rule"):
            raise CorrelationError(
                label,
                f"reference {ref.reference!r} is not resolved; load the rules through a "
                "SigmaCollection that contains the referenced rule",
            )
    return refs


def _compile_one(rule: SigmaCorrelationRule) -> CompiledCorrelation:
    rule_id = str(rule.id).lower() if rule.id is not None else None
    label = _label(rule_id, rule.title)
    kind = CorrelationKind(rule.type.name.lower()) if _known_type(rule.type) else None
    if kind is None:
        raise CorrelationError(label, f"unsupported correlation type {rule.type!s}")

    refs = _references(rule)
    targets = [ref.rule for ref in refs]
    rule_refs = tuple(rule_ref_of(target) for target in targets)
    if len({id(target) for target in targets}) != len(targets):
        raise CorrelationError(label, "the same rule is referenced more than once")
    for target, ref in zip(targets, rule_refs, strict=True):
        if not rule_keys(ref):
            raise CorrelationError(label, f"referenced rule {target.title!r} has no id or name")

    group_by = tuple(rule.group_by or ())
    group_fields = _group_fields(rule, label, targets, group_by)
    timespan = _timespan_seconds(rule, label)
    condition, value_fields, percentile = _condition(rule, label, kind, len(targets))

    level = str(rule.level) if rule.level is not None else None
    info = CorrelationRuleInfo(
        id=rule_id,
        name=rule.name,
        title=rule.title,
        level=level,
        tags=tuple(str(tag) for tag in rule.tags),
        type=kind.value,
    )
    crossing = kind in _CROSSING_KINDS and all(op in (Op.GT, Op.GTE) for op, _ in condition.terms)
    return CompiledCorrelation(
        info=info,
        kind=kind,
        rules=rule_refs,
        rule_is_correlation=tuple(isinstance(t, SigmaCorrelationRule) for t in targets),
        group_by=group_by,
        group_fields=group_fields,
        timespan=float(timespan),
        condition=condition,
        value_fields=value_fields,
        percentile=percentile,
        generate=bool(rule.generate),
        crossing=crossing,
    )


def _known_type(kind: SigmaCorrelationType) -> bool:
    return kind.name.lower() in {k.value for k in CorrelationKind}


def _group_fields(
    rule: SigmaCorrelationRule,
    label: str,
    targets: list[SigmaRule | SigmaCorrelationRule],
    group_by: tuple[str, ...],
) -> tuple[tuple[str, ...], ...]:
    # alias name -> {index of referenced rule -> field name}
    alias_map: dict[str, dict[int, str]] = {}
    for alias in rule.aliases:
        per_rule: dict[int, str] = {}
        for ref, field_name in alias.mapping.items():
            # pySigma does not resolve alias references itself: match by id or name.
            wanted = str(ref.reference)
            index = next(
                (
                    i
                    for i, target in enumerate(targets)
                    if {wanted, wanted.lower()} & set(rule_keys(rule_ref_of(target)))
                ),
                None,
            )
            if index is None:
                raise CorrelationError(
                    label,
                    f"alias {alias.alias!r} maps rule {ref.reference!r}, "
                    "which is not one of the correlated rules",
                )
            per_rule[index] = str(field_name)
        alias_map[alias.alias] = per_rule
    return tuple(
        tuple(alias_map.get(name, {}).get(index, name) for name in group_by)
        for index in range(len(targets))
    )


def _timespan_seconds(rule: SigmaCorrelationRule, label: str) -> int:
    spec = rule.timespan.spec
    unit = spec[-1:] if isinstance(spec, str) else ""
    if unit not in _UNIT_SECONDS:
        raise CorrelationError(
            label,
            f"timespan {spec!r} is not 'number + s/m/h/d' as the specification requires",
        )
    return int(rule.timespan.count) * _UNIT_SECONDS[unit]


def _number(label: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorrelationError(label, f"condition {key!r} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise CorrelationError(label, f"condition {key!r} must be finite")
    return number


def _condition(
    rule: SigmaCorrelationRule, label: str, kind: CorrelationKind, n_rules: int
) -> tuple[Condition, tuple[str, ...], float | None]:
    cond = rule.condition
    if not isinstance(cond, SigmaCorrelationCondition):
        raise CorrelationError(
            label,
            "extended (boolean expression) conditions are not part of the Sigma correlation "
            "specification and are not supported",
        )
    stashed = rule.custom_attributes.get(RANGE_CONDITION_ATTRIBUTE)
    if isinstance(stashed, Mapping):
        terms = tuple(
            (_OPS[str(key)], _number(label, str(key), value))
            for key, value in stashed.items()
            if str(key) in _OPS
        )
    else:
        terms = ((Op(cond.op.name.lower()), _number(label, cond.op.name.lower(), cond.count)),)
    if not terms:
        raise CorrelationError(label, "condition has no operator")

    raw_field = cond.fieldref
    fields: tuple[str, ...]
    if raw_field is None:
        fields = ()
    elif isinstance(raw_field, str):
        fields = (raw_field,)
    else:
        fields = tuple(str(f) for f in raw_field)

    percentile: float | None = None
    if kind is CorrelationKind.VALUE_COUNT or kind in _NUMERIC_KINDS:
        if not fields:
            raise CorrelationError(label, f"{kind.value} requires 'field' in the condition")
        if kind in _NUMERIC_KINDS and len(fields) != 1:
            raise CorrelationError(label, f"{kind.value} aggregates exactly one numeric field")
    elif fields:
        raise CorrelationError(label, f"{kind.value} does not take a 'field' in the condition")
    if kind is CorrelationKind.VALUE_PERCENTILE:
        if cond.percentile is None:
            raise CorrelationError(
                label,
                "value_percentile requires 'percentile' (0-100) in the condition: which "
                "percentile of the field is compared with the threshold",
            )
        percentile = float(cond.percentile)
        if not 0 <= percentile <= 100:
            raise CorrelationError(label, f"percentile {cond.percentile} is not within 0-100")
    elif kind is CorrelationKind.VALUE_MEDIAN:
        percentile = 50.0
    elif cond.percentile is not None:
        raise CorrelationError(label, f"{kind.value} does not take a 'percentile'")
    if kind in (CorrelationKind.TEMPORAL, CorrelationKind.TEMPORAL_ORDERED):
        for _, threshold in terms:
            if threshold > n_rules:
                raise CorrelationError(
                    label,
                    f"condition threshold {threshold:g} exceeds the {n_rules} correlated rules",
                )
    return Condition(terms), fields, percentile


def definition_key(corr: CompiledCorrelation) -> str:
    """A stable hash of what the engine's state of ``corr`` depends on.

    Identity (id, name), type, the referenced rules (by id/name, in order), group-by and its
    per-rule fields, timespan, condition, value field and percentile. Title, level, tags and
    ``generate`` only describe or route hits, so changing them keeps the held windows.
    """
    spec = [
        corr.info.id,
        corr.info.name,
        corr.kind.value,
        [[ref.id, ref.name] for ref in corr.rules],
        list(corr.rule_is_correlation),
        list(corr.group_by),
        [list(names) for names in corr.group_fields],
        corr.timespan,
        [[op.value, threshold] for op, threshold in corr.condition.terms],
        list(corr.value_fields),
        corr.percentile,
        corr.crossing,
    ]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:32]


def referenced_base_rules(compiled: Sequence[CompiledCorrelation]) -> dict[RuleRef, bool]:
    """Base (non-correlation) rules referenced by ``compiled``, each mapped to whether any
    correlation referencing it has ``generate: true``."""
    result: dict[RuleRef, bool] = {}
    for corr in compiled:
        for ref, is_corr in zip(corr.rules, corr.rule_is_correlation, strict=True):
            if not is_corr:
                result[ref] = result.get(ref, False) or corr.generate
    return result


def _output_suppressed_refs(compiled: Sequence[CompiledCorrelation]) -> set[RuleRef]:
    generate_by_ref: dict[RuleRef, bool] = {}
    for corr in compiled:
        for ref in corr.rules:
            generate_by_ref[ref] = generate_by_ref.get(ref, False) or corr.generate
    return {ref for ref, generate in generate_by_ref.items() if not generate}


def suppressed_base_rules(compiled: Sequence[CompiledCorrelation]) -> set[str]:
    """Ids (lowercase) and names of base rules whose own matches must NOT be output.

    Per the specification ``generate`` (default false) says whether the referenced rules are
    also output stand-alone. A rule is suppressed when it is referenced by at least one
    correlation and none of the correlations referencing it has ``generate: true``.
    (pySigma's own ``disable_output`` suppresses as soon as one referencing correlation has
    ``generate: false``; we let an explicit ``generate: true`` win.)
    """
    base = {ref for ref, gen in referenced_base_rules(compiled).items() if not gen}
    return {key for ref in base for key in rule_keys(ref)}


def suppressed_correlation_refs(compiled: Sequence[CompiledCorrelation]) -> set[RuleRef]:
    """Correlations whose hits only feed other correlations (same rule as base rules)."""
    corr_refs = {c.info.ref for c in compiled}
    return _output_suppressed_refs(compiled) & corr_refs
