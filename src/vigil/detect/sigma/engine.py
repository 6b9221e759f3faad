"""The matching engine: route each event to the rules its logsource can match, then let a
candidate index pick the few rules worth evaluating.

Routing: every logsource *source* (e.g. "Channel is Sysmon and EventID is 1") is a conjunction of
field values. Sources with the same field names form a group with a dict from value tuples to
sources, so routing an event costs one dict lookup per group, whatever the number of rules.

Candidates: each compiled rule names a set of lowered literals of which at least one must occur
in the event for the rule to match (its *witnesses*, see ``compiler.py``). Per source, an
Aho-Corasick automaton over those literals scans the event's lowered text once; only rules whose
witnesses were seen, plus the few without witnesses, are evaluated.

Evaluation: the routing outcome (a merged bucket) is remembered per raw routing values; each
bucket's per-event work (lowering fields, probing its index, calling its candidates) and each
rule's condition are generated Python code (``codegen.py``). The matcher trees stay the
reference: :meth:`SigmaEngine.match_reference` walks them, events with list values are
evaluated through them, and the tests compare both.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from vigil.detect.sigma.codegen import MatchFn, RunFn, bucket_function, lowered_fields
from vigil.detect.sigma.codegen import rule_function as generate_rule_function
from vigil.detect.sigma.compiler import Node
from vigil.detect.sigma.context import EventContext, LoweredFields
from vigil.detect.sigma.loader import CompiledRule, Variant
from vigil.events.model import EventRecord

LogsourceKey = tuple[tuple[str, str], ...]

#: Distinct routing outcomes whose merged index is kept (there are about as many as sources).
MERGED_CACHE_SIZE = 4096
#: Distinct raw routing values remembered (Channel, EventID, ... as they appear in events).
ROUTE_CACHE_SIZE = 16384
#: A field read by at least this share of a bucket's rules is lowered up front for every event.
PRELOWER_SHARE = 0.1


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _logsource_key(logsource: Mapping[str, str]) -> LogsourceKey:
    return tuple(sorted((k.lower(), str(v).lower()) for k, v in logsource.items()))


class Bucket:
    """The rule variants reachable through one source, with their candidate index.

    Three kinds of witnesses are indexed per event field (field "" stands for "any field", for
    keyword searches): substrings in one Aho-Corasick automaton per field, whole values in a
    dict per field, and numbers (canonical form) in a dict per field. So a literal only counts
    where the rule would look for it.
    """

    __slots__ = ("always", "automata", "entries", "equals", "numbers", "run")

    def __init__(self) -> None:
        self.entries: list[tuple[int, Variant]] = []  # (rule index, variant)
        self.always: tuple[int, ...] = ()
        self.automata: tuple[tuple[str, Any], ...] = ()
        self.equals: tuple[tuple[str, dict[str, tuple[int, ...]]], ...] = ()
        self.numbers: tuple[tuple[str, dict[str, tuple[int, ...]]], ...] = ()
        #: The generated per-event code (``compile``): positions of matching entries.
        self.run: RunFn | None = None

    def add(self, rule_index: int, variant: Variant) -> None:
        self.entries.append((rule_index, variant))

    def build(self) -> None:
        always: list[int] = []
        index: dict[str, dict[str, dict[str, list[int]]]] = {"sub": {}, "eq": {}, "num": {}}
        for pos, (_, variant) in enumerate(self.entries):
            wit = variant.matcher.witnesses()
            if not wit:
                always.append(pos)
                continue
            for kind, field_name, literal in wit:
                index[kind].setdefault(field_name, {}).setdefault(literal, []).append(pos)
        self.always = tuple(always)
        automata = []
        for field_name, literals in sorted(index["sub"].items()):
            automaton = ahocorasick.Automaton()
            for literal, positions in literals.items():
                automaton.add_word(literal, tuple(positions))
            automaton.make_automaton()
            automata.append((field_name, automaton))
        self.automata = tuple(automata)
        self.equals = tuple(
            (f, {lit: tuple(p) for lit, p in lits.items()}) for f, lits in index["eq"].items()
        )
        self.numbers = tuple(
            (f, {lit: tuple(p) for lit, p in lits.items()}) for f, lits in index["num"].items()
        )

    def compile(self, function_of: Callable[[Node], MatchFn], label: str = "bucket") -> None:
        """Generate ``run``: this index and the entries' matchers as straight Python code.

        Each entry's matcher is generated on its first call (``function_of``), so rules that
        never become candidates cost nothing.
        """
        nodes = [variant.matcher for _, variant in self.entries]
        functions: list[MatchFn] = []
        for pos, node in enumerate(nodes):
            functions.append(_generate_on_first_call(functions, pos, node, function_of))
        # Fields the index probes, then the ones many of the rules read.
        index_fields = [f for f, _ in self.automata if f] + [f for f, _ in self.equals]
        uses = Counter(f for node in nodes for f in set(lowered_fields(node)))
        frequent = [f for f, n in uses.most_common() if n >= max(2, len(nodes) * PRELOWER_SHARE)]
        self.run = bucket_function(
            always=self.always,
            automata=self.automata,
            equals=self.equals,
            numbers=self.numbers,
            prelower=list(dict.fromkeys(index_fields + frequent)),
            functions=functions,
            nodes=nodes,
            slow_candidates=self.candidates,
            label=label,
        )

    def candidates(self, ctx: EventContext) -> Iterable[int]:
        if not (self.automata or self.equals or self.numbers):
            return self.always
        found: set[int] = set(self.always)
        for field_name, automaton in self.automata:
            if field_name:
                texts = ctx.lower_strings(field_name)
                if texts is None:
                    continue
            else:
                texts = (ctx.text(),)
            for text in texts:
                for _, positions in automaton.iter(text):
                    found.update(positions)
        for field_name, table in self.equals:
            texts = ctx.lower_strings(field_name)
            if texts is not None:
                for text in texts:
                    hit = table.get(text)
                    if hit is not None:
                        found.update(hit)
        for field_name, table in self.numbers:
            for key in ctx.number_keys(field_name):
                hit = table.get(key)
                if hit is not None:
                    found.update(hit)
        return found


def _generate_on_first_call(
    functions: list[MatchFn], pos: int, node: Node, function_of: Callable[[Node], MatchFn]
) -> MatchFn:
    def first_call(lowered: LoweredFields, fields: dict[str, Any], ctx: EventContext) -> bool:
        fn = functions[pos] = function_of(node)
        return fn(lowered, fields, ctx)

    return first_call


@dataclass(frozen=True, slots=True)
class EngineStats:
    rules: int
    buckets: int
    indexed_variants: int
    unindexed_variants: int


class SigmaEngine:
    """Evaluates compiled rules against events. Pure: no I/O, no shared mutable state."""

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = list(rules)
        self._buckets: list[Bucket] = []
        # field names -> {value tuple -> bucket ids}
        self._groups: list[tuple[tuple[str, ...], dict[tuple[str, ...], list[int]]]] = []
        self._unconditional: list[int] = []
        self._hint_buckets: dict[LogsourceKey, int] = {}
        self._hint_cache: dict[LogsourceKey, tuple[int, ...]] = {}
        self._merged: dict[tuple[int, ...], Bucket] = {}
        #: id(matcher tree) -> its generated function (the trees live as long as the engine)
        self._functions: dict[int, MatchFn] = {}
        #: Every field routing reads, and (raw values, their types) -> merged bucket.
        self._route_names: tuple[str, ...] = ()
        self._route_cache: dict[Any, Bucket | None] = {}
        self._build()

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        by_source: dict[int, int] = {}  # id(source) -> bucket
        groups: dict[tuple[str, ...], dict[tuple[str, ...], list[int]]] = {}

        def bucket_for_hint(logsource: Mapping[str, str]) -> Bucket:
            key = _logsource_key(logsource)
            if key not in self._hint_buckets:
                self._hint_buckets[key] = len(self._buckets)
                self._buckets.append(Bucket())
            return self._buckets[self._hint_buckets[key]]

        for index, rule in enumerate(self.rules):
            for variant in rule.variants:
                src = variant.source
                if src is None or src.hint:
                    bucket_for_hint(rule.info.logsource).add(index, variant)
                if src is None:
                    continue
                conditions = src.conditions
                if not conditions and not src.hint:
                    bucket_id = by_source.setdefault(id(src), len(self._buckets))
                    if bucket_id == len(self._buckets):
                        self._buckets.append(Bucket())
                        self._unconditional.append(bucket_id)
                    self._buckets[bucket_id].add(index, variant)
                    continue
                if not conditions:
                    continue
                if id(src) not in by_source:
                    bucket_id = len(self._buckets)
                    by_source[id(src)] = bucket_id
                    self._buckets.append(Bucket())
                    names = tuple(sorted(conditions))
                    table = groups.setdefault(names, {})
                    allowed = [[_norm(v) for v in conditions[n]] for n in names]
                    for combo in itertools.product(*allowed):
                        table.setdefault(combo, []).append(bucket_id)
                self._buckets[by_source[id(src)]].add(index, variant)
        self._groups = list(groups.items())
        self._route_names = tuple(sorted({n for names in groups for n in names}))

    def stats(self) -> EngineStats:
        entries = [e for b in self._buckets for e in b.entries]
        unindexed = sum(1 for _, v in entries if not v.matcher.witnesses())
        return EngineStats(
            rules=len(self.rules),
            buckets=len(self._buckets),
            indexed_variants=len(entries) - unindexed,
            unindexed_variants=unindexed,
        )

    def _merged_bucket(self, bucket_ids: tuple[int, ...]) -> Bucket:
        """One index over every rule an event routed to these buckets can reach.

        Events of one kind (say, Sysmon process creation) route to the same few buckets (the
        category's, the service's, product-wide keyword rules); indexing their union once
        means each event scans each field once, and a rule shared by two buckets is met once.
        """
        merged = self._merged.get(bucket_ids)
        if merged is None:
            merged = Bucket()
            seen: set[int] = set()
            for bucket_id in bucket_ids:
                for rule_index, variant in self._buckets[bucket_id].entries:
                    if id(variant.matcher) not in seen:
                        seen.add(id(variant.matcher))
                        merged.add(rule_index, variant)
            merged.build()
            merged.compile(self._function, f"bucket {','.join(map(str, bucket_ids))}")
            if len(self._merged) >= MERGED_CACHE_SIZE:
                self._merged.pop(next(iter(self._merged)))
            self._merged[bucket_ids] = merged
        return merged

    # ------------------------------------------------------------------ matching
    def _route(self, event: EventRecord) -> list[int]:
        fields = event.fields
        found: list[int] = list(self._unconditional)
        for names, table in self._groups:
            key = []
            for name in names:
                value = fields.get(name)
                if value is None:
                    break
                key.append(_norm(value))
            else:
                hit = table.get(tuple(key))
                if hit:
                    found.extend(hit)
        if event.logsource:
            found.extend(self._hint_route(event.logsource))
        return found

    def _hint_route(self, hint: Mapping[str, str]) -> tuple[int, ...]:
        key = _logsource_key(hint)
        cached = self._hint_cache.get(key)
        if cached is None:
            have = dict(key)
            cached = tuple(
                bucket
                for ls_key, bucket in self._hint_buckets.items()
                if ls_key and all(have.get(k) == v for k, v in ls_key)
            )
            self._hint_cache[key] = cached
        return cached

    def _function(self, node: Node) -> MatchFn:
        fn = self._functions.get(id(node))
        if fn is None:
            fn = self._functions[id(node)] = generate_rule_function(node)
        return fn

    def _bucket_for(self, event: EventRecord) -> Bucket | None:
        """The merged bucket ``event`` routes to, remembered by its raw routing values."""
        values = tuple(map(event.fields.get, self._route_names))
        # The types are part of the key: 1, 1.0 and True are equal dict keys but route apart.
        key: Any = (values, tuple(map(type, values)))
        if event.logsource:
            key = (key, _logsource_key(event.logsource))
        try:
            return self._route_cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable value (a list): route without remembering
            return self._bucket_of(self._route(event))
        bucket = self._bucket_of(self._route(event))
        if len(self._route_cache) >= ROUTE_CACHE_SIZE:
            self._route_cache.pop(next(iter(self._route_cache)))
        self._route_cache[key] = bucket
        return bucket

    def _bucket_of(self, buckets: list[int]) -> Bucket | None:
        if not buckets:
            return None
        key = (buckets[0],) if len(buckets) == 1 else tuple(sorted(set(buckets)))
        return self._merged.get(key) or self._merged_bucket(key)

    def match(self, event: EventRecord, ctx: EventContext | None = None) -> list[CompiledRule]:
        """The rules matching ``event``, each once, in load order."""
        bucket = self._bucket_for(event)
        if bucket is None:
            return []
        fields = event.fields
        if ctx is None:
            ctx = EventContext(fields)
        lowered = LoweredFields()
        lowered.fields = fields
        assert bucket.run is not None
        matched = bucket.run(lowered, fields, ctx)
        if not matched:
            return []
        entries = bucket.entries
        rules = self.rules
        if len(matched) == 1:
            return [rules[entries[matched[0]][0]]]
        return [rules[i] for i in sorted({entries[pos][0] for pos in matched})]

    def match_reference(self, event: EventRecord) -> list[CompiledRule]:
        """What :meth:`match` answers, computed by walking the matcher trees (no generated
        code): the reference the generated code is tested against."""
        buckets = self._route(event)
        if not buckets:
            return []
        ctx = EventContext(event.fields)
        key = (buckets[0],) if len(buckets) == 1 else tuple(sorted(set(buckets)))
        bucket = self._merged.get(key) or self._merged_bucket(key)
        entries = bucket.entries
        matched = {
            entries[pos][0] for pos in bucket.candidates(ctx) if entries[pos][1].matcher.match(ctx)
        }
        return [self.rules[i] for i in sorted(matched)]

    def variant_for(self, rule: CompiledRule, event: EventRecord) -> Variant | None:
        """The variant of ``rule`` that ``event`` is routed to (None: not its logsource)."""
        for bucket_id in self._route(event):
            for _, variant in self._buckets[bucket_id].entries:
                if any(variant is v for v in rule.variants):
                    return variant
        return None
