"""Compile a rule's matcher tree into one Python function, so an event walks no object tree.

The tree (``compiler.py``, slimmed by ``optimize.py``) stays the reference: it explains matches
and handles every value shape. The generated function answers the same question with the tree's
logic inlined: ``and``/``or``/``not`` short-circuit in the condition's order, string tests are
``in``/``startswith``/``endswith`` on pre-lowered constants, and wildcard or regex patterns are
compiled regexes bound as globals of the function. Its signature is ``fn(L, F, C)``:

- ``L``: :class:`LoweredFields` of the event (lowered string of each scalar field; None when
  absent or null). A list or structured value raises :class:`NotFlat`, and the caller falls back
  to the tree for that event.
- ``F``: the event's raw fields (numbers, existence, case-sensitive strings, regexes).
- ``C``: the event's :class:`EventContext`, for the rare predicates that are not inlined (they
  are called as the tree calls them, so they mean the same by construction).

Why semantics cannot drift: every inlined test is the tree's own test spelled out for a single
scalar value (``StringSet.test``, ``NumberEquals``/``Regex`` on one value, ``Exists``); lists go
through the tree. ``tests/detect/sigma/test_codegen.py`` compares both on every SigmaHQ rule with
its regression events and on random events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import ahocorasick

from vigil import speedups
from vigil.detect.sigma.compiler import And, FieldItem, Node, Not, Or, Selection
from vigil.detect.sigma.context import EventContext, LoweredFields, NotFlat
from vigil.detect.sigma.optimize import StringField
from vigil.detect.sigma.values import (
    AnyOf,
    Exists,
    FieldRef,
    NumberEquals,
    Predicate,
    Regex,
    StringSet,
)

#: ``fn(L, F, C) -> bool``; see the module docstring.
MatchFn = Callable[[LoweredFields, dict[str, Any], EventContext], bool]

#: Above this many ``contains`` literals one Aho-Corasick scan beats a chain of ``in`` tests
#: (measured on 170-character command lines; a regex alternation is slower than both).
CONTAINS_CHAIN_MAX = 30
#: From this many ``contains`` literals one ``vigil._candidates.Automaton.search`` (one pass
#: over the UTF-8 bytes, stopping at the first hit) beats a chain of ``in`` tests: on a
#: 196-character command line a chain costs ~800 instructions a literal, a search ~3,300.
DFA_CHAIN_MIN = 4


class Source:
    """Python source under construction plus the objects it refers to by name."""

    def __init__(self) -> None:
        self.env: dict[str, Any] = {}
        self._names: dict[int, str] = {}

    def bind(self, obj: Any, prefix: str) -> str:
        """A global name for ``obj`` in the generated module (one per distinct object)."""
        name = self._names.get(id(obj))
        if name is None:
            name = f"_{prefix}{len(self.env)}"
            self.env[name] = obj
            self._names[id(obj)] = name
        return name

    def define(self, source: str, name: str, filename: str) -> Any:
        """Compile ``source`` and return the object it defines as ``name``."""
        code = compile(source, filename, "exec")
        env = dict(self.env)
        env["__builtins__"] = __builtins__
        exec(code, env)
        return env[name]


class RuleSource(Source):
    """Generates the boolean expression of one matcher tree."""

    def expr(self, node: Node) -> str:
        if isinstance(node, Selection):
            return self.expr(node.body)
        if isinstance(node, And | Or):
            op = " and " if isinstance(node, And) else " or "
            children: list[Node] = list(_flat(node))
            if isinstance(node, Or):
                children = _merge_string_fields(children)
            # Cheapest test first: the terms are pure, so their order changes the cost only
            # (a term that raises NotFlat sends the event to the tree, whatever ran before).
            children.sort(key=cost)
            return "(" + op.join(self.expr(child) for child in children) + ")"
        if isinstance(node, AnyString):
            key = repr(node.name)
            tests = _join(" or ", [self.string_test(ss, "s") for ss in node.sets])
            return f"((s := L[{key}]) is not None and {tests})"
        if isinstance(node, Not):
            return f"(not {self.expr(node.item)})"
        if isinstance(node, StringField):
            inner = self.pred(node.strings, node.name)
            return f"(not {inner})" if node.negated else inner
        if isinstance(node, FieldItem):
            return self.field_item(node)
        # Keyword searches and anything new: call the tree node itself.
        return f"{self.bind(node, 'node')}.match(C)"

    def field_item(self, item: FieldItem) -> str:
        if item.all_linked:
            parts = [_join(" or ", [self.pred(p, n) for n in item.names]) for p in item.preds]
            body = _join(" and ", parts)
        else:
            body = _join(" or ", [self.pred(p, n) for p in item.preds for n in item.names])
        return f"(not {body})" if item.negated else body

    def pred(self, pred: Predicate, name: str) -> str:
        """Does field ``name`` satisfy ``pred`` — for a scalar value, as ``pred.match`` says."""
        key = repr(name)
        if isinstance(pred, StringSet):
            if pred.cased:
                test = self.string_test(pred, "r")
                fallback = f"{self.bind(pred, 'pred')}.match(C, {key})"
                return f"({test} if (r := F.get({key})).__class__ is str else {fallback})"
            return f"((s := L[{key}]) is not None and {self.string_test(pred, 's')})"
        if isinstance(pred, NumberEquals):
            fallback = f"{self.bind(pred, 'pred')}.match(C, {key})"
            number = self.bind(pred.number, "num")
            # An int is its own number (bool is not an int here: its class is bool).
            return f"(v == {number} if (v := F.get({key})).__class__ is int else {fallback})"
        if isinstance(pred, Regex):
            search = self.bind(pred.pattern.search, "re")
            fallback = f"{self.bind(pred, 'pred')}.match(C, {key})"
            return (
                f"({search}(r) is not None if (r := F.get({key})).__class__ is str else {fallback})"
            )
        if isinstance(pred, Exists):
            return f"({key} {'in' if pred.want else 'not in'} F)"
        if isinstance(pred, FieldRef):
            if pred.starts and pred.ends:
                test = "b in a"
            elif pred.starts or pred.ends:
                test = f"a.{'startswith' if pred.starts else 'endswith'}(b)"
            else:
                test = "a == b"
            return (
                f"((a := L[{key}]) is not None and (b := L[{pred.other!r}]) is not None and {test})"
            )
        if isinstance(pred, AnyOf):
            return _join(" or ", [self.pred(p, name) for p in pred.preds])
        return f"{self.bind(pred, 'pred')}.match(C, {key})"

    def string_test(self, ss: StringSet, var: str) -> str:
        """``StringSet.test`` for the string in variable ``var``."""
        parts: list[str] = []
        if ss.equals:
            if len(ss.equals) == 1:
                parts.append(f"{var} == {next(iter(ss.equals))!r}")
            else:
                parts.append(f"{var} in {self.bind(ss.equals, 'eq')}")
        if "" in ss.starts:
            return "True"  # a lone "*": every string
        for method, affixes in (("startswith", ss.starts), ("endswith", ss.ends)):
            if affixes:
                arg = repr(affixes[0]) if len(affixes) == 1 else repr(affixes)
                parts.append(f"{var}.{method}({arg})")
        kernel = _collect_kernel()
        if kernel is not None and len(ss.contains) >= DFA_CHAIN_MIN:
            words = tuple(ss.contains)
            dfa = kernel.Automaton(words, tuple(() for _ in words))
            parts.append(f"{self.bind(dfa.search, 'dfa')}({var})")
        elif len(ss.contains) > CONTAINS_CHAIN_MAX:
            automaton = ahocorasick.Automaton()
            for literal in ss.contains:
                automaton.add_word(literal, literal)
            automaton.make_automaton()
            parts.append(f"any({self.bind(automaton.iter, 'ac')}({var}))")
        else:
            parts.extend(f"{c!r} in {var}" for c in ss.contains)
        if ss.regex is not None:
            parts.append(f"{self.bind(ss.regex.fullmatch, 're')}({var}) is not None")
        return _join(" or ", parts) if parts else "False"


class AnyString(Node):
    """Several ``Field: [strings]`` items on one field under one ``or`` (e.g. two selections
    of ``CommandLine|contains``), tested as one: the field is read once and their ``contains``
    literals are searched in one pass. Generated code only; the tree keeps the items."""

    __slots__ = ("name", "sets")

    def __init__(self, name: str, sets: list[StringSet]) -> None:
        self.name = name
        self.sets = sets


def _merge_string_fields(children: list[Node]) -> list[Node]:
    """``children`` of an ``or`` with the non-negated :class:`StringField` items of each field
    combined into one :class:`AnyString` (``a or b`` on one value is one test of both)."""
    by_name: dict[str, list[StringField]] = {}
    for child in children:
        if isinstance(child, StringField) and not child.negated:
            by_name.setdefault(child.name, []).append(child)
    out: list[Node] = []
    for child in children:
        if isinstance(child, StringField) and not child.negated:
            group = by_name[child.name]
            if len(group) == 1:
                out.append(child)
            elif group[0] is child:
                out.append(AnyString(child.name, [_union(f.strings for f in group)]))
        else:
            out.append(child)
    return out


def _union(sets: Iterator[StringSet]) -> StringSet:
    """One :class:`StringSet` matching what any of ``sets`` matches (same case handling)."""
    merged = StringSet([], cased=False)
    regexes: list[str] = []
    for ss in sets:
        merged.equals = merged.equals | ss.equals
        merged.starts = merged.starts + tuple(ss.starts)
        merged.ends = merged.ends + tuple(ss.ends)
        merged.contains = merged.contains + tuple(ss.contains)
        if ss.regex is not None:
            regexes.append(f"(?:{ss.regex.pattern})")
    if regexes:
        merged.regex = re.compile("|".join(regexes), re.DOTALL)  # StringSet's own flags
    merged.starts = tuple(dict.fromkeys(merged.starts))
    merged.ends = tuple(dict.fromkeys(merged.ends))
    merged.contains = tuple(dict.fromkeys(merged.contains))
    return merged


#: Rough costs of generated tests, in units of one C-level test on a short string (a dict
#: lookup, ``==``, ``startswith`` with a tuple); a substring test scans the whole value.
COST_LOOKUP = 1.0
COST_CONTAINS = 2.0
COST_REGEX = 8.0
COST_CALL = 12.0  # a tree node or predicate called through Python (keyword searches, CIDR...)
COST_TREE = 40.0


def cost(node: Node) -> float:
    """Estimated cost of the generated test of ``node`` when every term runs (for ordering
    the terms of ``and``/``or``; only the order of the estimates matters)."""
    while isinstance(node, Selection):
        node = node.body
    if isinstance(node, And | Or):
        return sum(cost(child) for child in node.items)
    if isinstance(node, Not):
        return cost(node.item)
    if isinstance(node, StringField):
        return COST_LOOKUP + pred_cost(node.strings)
    if isinstance(node, AnyString):
        return COST_LOOKUP + sum(pred_cost(ss) for ss in node.sets)
    if isinstance(node, FieldItem):
        return len(node.names) * sum(COST_LOOKUP + pred_cost(p) for p in node.preds)
    return COST_TREE


def pred_cost(pred: Predicate) -> float:
    """Estimated cost of :meth:`RuleSource.pred` on one field's scalar value."""
    if isinstance(pred, StringSet):
        if "" in pred.starts:
            return 0.0
        out = COST_LOOKUP * (bool(pred.equals) + bool(pred.starts) + bool(pred.ends))
        if len(pred.contains) > CONTAINS_CHAIN_MAX:
            out += COST_REGEX
        else:
            out += COST_CONTAINS * len(pred.contains)
        if pred.regex is not None:
            out += COST_REGEX
        return out
    if isinstance(pred, NumberEquals | Exists):
        return COST_LOOKUP
    if isinstance(pred, FieldRef):
        return 2 * COST_LOOKUP + COST_CONTAINS
    if isinstance(pred, Regex):
        return COST_REGEX
    if isinstance(pred, AnyOf):
        return sum(pred_cost(p) for p in pred.preds)
    return COST_CALL


def _flat(node: And | Or) -> Iterator[Node]:
    """Children of ``node``, with nested nodes of the same kind (and selections) unwrapped."""
    for child in node.items:
        while isinstance(child, Selection):
            child = child.body
        if type(child) is type(node):
            assert isinstance(child, And | Or)
            yield from _flat(child)
        else:
            yield child


def _join(op: str, parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else "(" + op.join(parts) + ")"


def rule_function(node: Node, name: str = "rule") -> MatchFn:
    """The generated matcher of ``node``; the tree itself when the source will not compile."""
    src = RuleSource()
    try:
        body = src.expr(node)
        return src.define(  # type: ignore[no-any-return]
            f"def match(L, F, C):\n    return {body}\n", "match", f"<sigma {name}>"
        )
    except (RecursionError, SyntaxError, MemoryError, ValueError, re.error):
        # Absurdly deep or large conditions: the tree is as exact, only slower.
        return _tree_function(node)


def _tree_function(node: Node) -> MatchFn:
    def match(lowered: LoweredFields, fields: dict[str, Any], ctx: EventContext) -> bool:
        return node.match(ctx)

    return match


# --------------------------------------------------------------------------- candidate index

#: ``run(L, F, C) -> positions`` of a bucket's entries that match the event.
RunFn = Callable[[LoweredFields, dict[str, Any], EventContext], list[int]]
Table = dict[str, tuple[int, ...]]


def lowered_fields(node: Node) -> Iterator[str]:
    """The event fields a generated matcher reads through ``L`` (with repeats)."""
    if isinstance(node, Selection):
        yield from lowered_fields(node.body)
    elif isinstance(node, And | Or):
        for child in node.items:
            yield from lowered_fields(child)
    elif isinstance(node, Not):
        yield from lowered_fields(node.item)
    elif isinstance(node, StringField):
        yield node.name
    elif isinstance(node, FieldItem) and any(_reads_lowered(p) for p in node.preds):
        yield from node.names


def _reads_lowered(pred: Predicate) -> bool:
    if isinstance(pred, AnyOf):
        return any(_reads_lowered(p) for p in pred.preds)
    return (isinstance(pred, StringSet) and not pred.cased) or isinstance(pred, FieldRef)


_INTEGER_CHARS = frozenset("-0123456789")

#: Most anchors tried before an automaton's scan (each costs one pass over the text).
MAX_ANCHORS = 6
#: Up to this many literals are looked for with `in` rather than with their automaton.
SMALL_AUTOMATON = 6


def anchors(literals: list[str]) -> list[str] | None:
    """A few substrings such that every literal contains one (None: more than MAX_ANCHORS).

    Greedy set cover over the literals' substrings of 2 to 6 characters. Two letters or digits
    occur in most texts, so a candidate must be 4+ characters long or hold another character
    (``::``, ``.da``), unless a literal is too short for either.
    """
    todo = set(literals)
    chosen: list[str] = []
    while todo:
        if len(chosen) == MAX_ANCHORS:
            return None
        cover: dict[str, int] = {}
        for lit in todo:
            subs = {lit[i : i + n] for n in range(2, 7) for i in range(len(lit) - n + 1)}
            good = {x for x in subs if len(x) >= 4 or not x.isalnum()} or {lit}
            for x in good:
                cover[x] = cover.get(x, 0) + 1
        best = max(cover, key=lambda x: (cover[x], len(x), x))
        chosen.append(best)
        todo = {lit for lit in todo if best not in lit}
    return chosen


class BucketSource(Source):
    """Generates a bucket's whole per-event work: lower the fields its rules read, probe its
    candidate index, and call the candidates' matchers."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.locals: dict[str, str] = {}

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    def lower(self, name: str) -> str:
        """Emit code that fills ``L[name]`` without a call; the local holding it."""
        local = self.locals.get(name)
        if local is None:
            local = self.locals[name] = f"s{len(self.locals)}"
            key = repr(name)
            self.emit(2, f"v = F.get({key})")
            self.emit(2, "if v.__class__ is str:")
            self.emit(3, f"L[{key}] = {local} = v.lower()")
            self.emit(2, "elif v is None:")
            self.emit(3, f"L[{key}] = {local} = None")
            self.emit(2, "else:")
            self.emit(3, f"{local} = L[{key}]  # numbers converted; lists raise NotFlat")
        return local

    def lower_many(self, names: list[str], lower_fields: Callable[..., Any]) -> None:
        """Emit one call of the C kernel ``lower_fields`` doing :meth:`lower` for ``names``."""
        new = [name for name in dict.fromkeys(names) if name not in self.locals]
        if not new:
            return
        targets = [self.locals.setdefault(name, f"s{len(self.locals)}") for name in new]
        call = f"{self.bind(lower_fields, 'lower')}(F, L, {self.bind(tuple(new), 'names')})"
        self.emit(2, f"{', '.join(targets)}, = {call}")

    def scan(self, local: str, automaton: Any, indent: int, *, nullable: bool = True) -> None:
        """Emit code adding the positions of every literal of ``automaton`` found in ``local``
        (a string, or with ``nullable`` None for an absent field)."""
        if nullable:
            self.emit(indent, f"if {local} is not None:")
            indent += 1
        words = list(automaton.keys())
        if len(words) > SMALL_AUTOMATON:
            self.emit(indent, f"for _, p in {self.bind(automaton.iter, 'ac')}({local}):")
            self.emit(indent + 1, "found.update(p)")
            return
        # A few literals: `in` tests cost less than the automaton's call and per-character walk.
        for word in words:
            self.emit(indent, f"if {word!r} in {local}:")
            self.emit(indent + 1, f"found.update({self.bind(automaton.get(word), 'at')})")

    def probe(self, local: str, table: str) -> None:
        self.emit(2, f"p = {table}.get({local})")
        self.emit(2, "if p is not None:")
        self.emit(3, "found.update(p)")


def bucket_function(
    *,
    always: tuple[int, ...],
    automata: tuple[tuple[str, Any], ...],
    equals: tuple[tuple[str, Table], ...],
    numbers: tuple[tuple[str, Table], ...],
    prelower: list[str],
    functions: list[MatchFn],
    nodes: list[Node],
    slow_candidates: Callable[[EventContext], Any],
    label: str = "bucket",
) -> RunFn:
    """The generated ``run`` of one bucket; see ``engine.Bucket`` for the index it probes.

    ``functions`` is read at call time, so an entry may replace itself (lazy compilation).
    ``slow_candidates`` and ``nodes`` serve events with list values (:class:`NotFlat`).
    """
    src = BucketSource()
    emit = src.emit
    src.bind(NotFlat, "NotFlat")
    emit(0, "def run(L, F, C):")
    emit(1, "try:")
    native = speedups.NATIVE  # read per call, so a test can build both forms in one process
    collect = _collect_kernel()
    if native is not None and collect is not None:
        # Prelowering and the whole index probe in two C calls; the Python below is what they
        # do (tests/detect/sigma/test_candidates_kernel.py compares both).
        names = tuple(dict.fromkeys(prelower))
        lowered = src.bind(native.lower_fields, "lower")
        emit(2, f"S = {lowered}(F, L, {src.bind(names, 'names')})")
        plan = src.bind(probe_plan(automata, equals, numbers, names, collect), "plan")
        kernel = src.bind(collect.collect, "collect")
        emit(2, f"found = {kernel}({plan}, {src.bind(always, 'always')}, S, F, C)")
        _emit_candidate_loop(src, functions, nodes, slow_candidates)
        return src.define("\n".join(src.lines) + "\n", "run", f"<sigma {label}>")  # type: ignore[no-any-return]
    if native is not None:
        src.lower_many(prelower, native.lower_fields)
    for name in prelower:
        src.lower(name)
    emit(2, f"found = set({src.bind(always, 'always')})" if always else "found = set()")
    for name, automaton in automata:
        if name:
            src.scan(src.lower(name), automaton, 2)
        else:  # keyword witnesses: anywhere in the event's text
            words = list(automaton.keys())
            # No integer's text ("-" and digits) holds these: integers can be left out.
            no_int = all(set(w) - _INTEGER_CHARS for w in words)
            emit(2, f"t = C.{'string_text' if no_int else 'text'}()")
            found_any = anchors(words)
            if found_any and len(words) > SMALL_AUTOMATON:
                # Each literal holds one of these: a few C-level `in` tests spare most events
                # the automaton's slower scan.
                emit(2, "if " + " or ".join(f"{a!r} in t" for a in found_any) + ":")
                src.scan("t", automaton, 3, nullable=False)
            else:
                src.scan("t", automaton, 2, nullable=False)
    for name, table in equals:
        src.probe(src.lower(name), src.bind(table, "eq"))
    for name, table in numbers:
        key = repr(name)
        table_name = src.bind(table, "num")
        emit(2, f"v = F.get({key})")
        emit(2, "if v.__class__ is int:")  # an int's canonical number is str(v)
        emit(3, f"p = {table_name}.get(str(v))")
        emit(3, "if p is not None:")
        emit(4, "found.update(p)")
        emit(2, "elif v is not None:")
        emit(3, f"for k in C.number_keys({key}):")
        emit(4, f"p = {table_name}.get(k)")
        emit(4, "if p is not None:")
        emit(5, "found.update(p)")
    _emit_candidate_loop(src, functions, nodes, slow_candidates)
    return src.define("\n".join(src.lines) + "\n", "run", f"<sigma {label}>")  # type: ignore[no-any-return]


def _emit_candidate_loop(
    src: BucketSource,
    functions: list[MatchFn],
    nodes: list[Node],
    slow_candidates: Callable[[EventContext], Any],
) -> None:
    """Emit the end of ``run``: the NotFlat fallback of the probe, then each candidate's
    matcher (the tree's for an event with list values)."""
    emit = src.emit
    emit(1, f"except {src.bind(NotFlat, 'NotFlat')}:")
    emit(2, f"found = {src.bind(slow_candidates, 'slow')}(C)")
    fns = src.bind(functions, "fns")
    emit(1, "out = []")
    emit(1, "for pos in found:")
    emit(2, "try:")
    emit(3, f"if {fns}[pos](L, F, C):")
    emit(4, "out.append(pos)")
    emit(2, f"except {src.bind(NotFlat, 'NotFlat')}:")
    emit(3, f"if {src.bind(nodes, 'nodes')}[pos].match(C):")
    emit(4, "out.append(pos)")
    emit(1, "return out")


def _collect_kernel() -> ModuleType | None:
    """``vigil._candidates`` when the C kernels are in use and it was built."""
    if speedups.NATIVE is None:
        return None
    try:
        from vigil import _candidates
    except ImportError:  # optional build skipped
        return None
    return _candidates


def _scan_step(index: int, automaton: Any, kernel: ModuleType) -> tuple[Any, ...]:
    """The plan step of :meth:`BucketSource.scan`: the automaton (as the kernel's DFA, with
    pyahocorasick for text UTF-8 cannot hold), or a few ``in`` tests."""
    words = list(automaton.keys())
    if len(words) > SMALL_AUTOMATON:
        dfa = kernel.Automaton(tuple(words), tuple(automaton.get(w) for w in words))
        return (5, index, dfa, automaton.iter)
    return (1, index, tuple(words), tuple(automaton.get(w) for w in words))


def probe_plan(
    automata: tuple[tuple[str, Any], ...],
    equals: tuple[tuple[str, Table], ...],
    numbers: tuple[tuple[str, Table], ...],
    names: tuple[str, ...],
    kernel: ModuleType,
) -> tuple[tuple[Any, ...], ...]:
    """The steps ``vigil._candidates.collect`` runs for a bucket: the same probes, in the same
    order and with the same shortcuts, as the Python code :func:`bucket_function` emits.
    ``names`` are the prelowered fields, in the order of the tuple ``S`` the kernel gets."""
    where = {name: i for i, name in enumerate(names)}
    steps: list[tuple[Any, ...]] = []
    for name, automaton in automata:
        if name:
            steps.append(_scan_step(where[name], automaton, kernel))
            continue
        words = list(automaton.keys())
        no_int = all(set(w) - _INTEGER_CHARS for w in words)
        found_any = anchors(words)
        guard = tuple(found_any) if found_any and len(words) > SMALL_AUTOMATON else None
        method = "string_text" if no_int else "text"
        steps.append((3, method, guard, _scan_step(-1, automaton, kernel)))
    steps.extend((2, where[name], table) for name, table in equals)
    steps.extend((4, name, table) for name, table in numbers)
    return tuple(steps)
