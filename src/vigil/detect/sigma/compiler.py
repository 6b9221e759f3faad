"""Compile a pySigma rule's detection and condition into a tree of fast matcher nodes.

pySigma parses the YAML, applies the value modifiers and parses the condition; from then on no
pySigma object is touched per event. Each node answers ``match(ctx)``, can name the literals that
any match requires (``witnesses``, for the candidate index) and can explain itself
(``explain.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
)
from sigma.exceptions import SigmaError
from sigma.modifiers import reverse_modifier_mapping
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaDetections
from sigma.types import Placeholder, SigmaRegularExpression, SigmaString, SigmaType

from vigil.detect.sigma.context import EventContext
from vigil.detect.sigma.errors import CompileError
from vigil.detect.sigma.values import Predicate, build_predicates, literal_score

#: (kind, event field, lowered literal), one of which any match requires; field "" = any field.
#: Kinds as in ``values.Witness``.
Witnesses = frozenset[tuple[str, str, str]] | None
FieldMap = Mapping[str, tuple[str, ...]]


class PlaceholderMissing(CompileError):
    def __init__(self, name: str) -> None:
        super().__init__(f"placeholder %{name}% has no configured values")
        self.name = name


def best_witnesses(options: Sequence[Witnesses]) -> Witnesses:
    """Of several witness sets that all must hold (AND), the most selective one."""
    known = [w for w in options if w]
    if not known:
        return None
    # The set whose weakest literal is most distinctive, then the one with fewer literals.
    return max(known, key=lambda w: (min(_score(k, f, lit) for k, f, lit in w), -len(w)))


#: Fields with few distinct values: equality with one of them says little about an event.
CATEGORICAL_FIELDS = frozenset(
    {
        "IntegrityLevel", "EventID", "EventType", "Company", "Product", "Protocol", "Initiated",
        "LogonType", "Signed", "SignatureStatus", "Status", "Provider_Name", "Channel", "Level",
        "Task", "Opcode", "State", "Type", "AuthenticationPackageName", "LogonProcessName",
        "ObjectType", "ObjectServer", "AccessMask", "ImpersonationLevel", "ElevatedToken",
        "DestinationPort", "SourcePort", "Keywords", "Version", "ServiceType", "StartType",
        "Description", "SubjectUserName", "User", "GrantedAccess",
    }
)  # fmt: skip


def _score(kind: str, field: str, literal: str) -> int:
    if kind == "sub":
        return literal_score(literal)
    if field in CATEGORICAL_FIELDS:
        return 1
    # Whole-value equality on a free-text field beats a substring of the same length.
    return len(literal) + 8


def _on_fields(literals: frozenset[tuple[str, str]] | None, names: Sequence[str]) -> Witnesses:
    if literals is None:
        return None
    if names == ("",):
        # Keyword search: every witness becomes "somewhere in the event's text".
        return frozenset(("sub", "", lit) for _, lit in literals)
    return frozenset((kind, name, lit) for name in names for kind, lit in literals)


def union_witnesses(options: Sequence[Witnesses]) -> Witnesses:
    """Of alternatives (OR), every alternative's literals are needed."""
    out: set[tuple[str, str, str]] = set()
    for w in options:
        if not w:
            return None
        out |= w
    return frozenset(out)


class Node:
    __slots__ = ()

    def match(self, ctx: EventContext) -> bool:
        raise NotImplementedError

    def witnesses(self) -> Witnesses:
        return None

    def children(self) -> Sequence[Node]:
        return ()

    def describe(self) -> str:
        raise NotImplementedError


class FieldItem(Node):
    """``Field|modifiers: values`` — one field (or its mapped alternatives) against values."""

    __slots__ = ("all_linked", "label", "names", "negated", "preds", "single")

    def __init__(
        self,
        label: str,
        names: tuple[str, ...],
        preds: Sequence[Predicate],
        *,
        all_linked: bool,
        negated: bool,
    ) -> None:
        self.label = label
        self.names = names
        self.preds = tuple(preds)
        self.all_linked = all_linked
        self.negated = negated
        self.single = names[0] if len(names) == 1 else None

    def match(self, ctx: EventContext) -> bool:
        name = self.single
        if name is not None:
            if self.all_linked:
                for p in self.preds:
                    if not p.match(ctx, name):
                        return self.negated
                return not self.negated
            for p in self.preds:
                if p.match(ctx, name):
                    return not self.negated
            return self.negated
        names = self.names
        if self.all_linked:
            ok = all(any(p.match(ctx, n) for n in names) for p in self.preds)
        else:
            ok = any(p.match(ctx, n) for p in self.preds for n in names)
        return ok is not self.negated

    def witnesses(self) -> Witnesses:
        if self.negated:
            return None
        options = [_on_fields(p.witnesses(), self.names) for p in self.preds]
        return best_witnesses(options) if self.all_linked else union_witnesses(options)

    def describe(self) -> str:
        # The label is "Field|modifiers": name the event field only when the mapping renamed it.
        renamed = self.names != (self.label.split("|", 1)[0],)
        mapped = f" (event field {' or '.join(self.names)})" if renamed else ""
        return f"{self.label}{mapped}"


class KeywordItem(Node):
    """Field-less values: searched in every value of the event."""

    __slots__ = ("all_linked", "preds")

    def __init__(self, preds: Sequence[Predicate], *, all_linked: bool) -> None:
        self.preds = tuple(preds)
        self.all_linked = all_linked

    def match(self, ctx: EventContext) -> bool:
        if self.all_linked:
            return all(p.match_any(ctx) for p in self.preds)
        return any(p.match_any(ctx) for p in self.preds)

    def witnesses(self) -> Witnesses:
        options = [_on_fields(p.witnesses(), ("",)) for p in self.preds]
        return best_witnesses(options) if self.all_linked else union_witnesses(options)

    def describe(self) -> str:
        return "keywords " + "; ".join(p.describe() for p in self.preds)


class And(Node):
    __slots__ = ("items",)

    def __init__(self, items: Sequence[Node]) -> None:
        self.items = tuple(items)

    def match(self, ctx: EventContext) -> bool:
        for item in self.items:
            if not item.match(ctx):
                return False
        return True

    def witnesses(self) -> Witnesses:
        return best_witnesses([i.witnesses() for i in self.items])

    def children(self) -> Sequence[Node]:
        return self.items

    def describe(self) -> str:
        return "all of"


class Or(Node):
    __slots__ = ("items",)

    def __init__(self, items: Sequence[Node]) -> None:
        self.items = tuple(items)

    def match(self, ctx: EventContext) -> bool:
        for item in self.items:
            if item.match(ctx):
                return True
        return False

    def witnesses(self) -> Witnesses:
        return union_witnesses([i.witnesses() for i in self.items])

    def children(self) -> Sequence[Node]:
        return self.items

    def describe(self) -> str:
        return "any of"


class Not(Node):
    __slots__ = ("item",)

    def __init__(self, item: Node) -> None:
        self.item = item

    def match(self, ctx: EventContext) -> bool:
        return not self.item.match(ctx)

    def children(self) -> Sequence[Node]:
        return (self.item,)

    def describe(self) -> str:
        return "not"


class Selection(Node):
    """A named search identifier, kept for explanations."""

    __slots__ = ("body", "name")

    def __init__(self, name: str, body: Node) -> None:
        self.name = name
        self.body = body

    def match(self, ctx: EventContext) -> bool:
        return self.body.match(ctx)

    def witnesses(self) -> Witnesses:
        return self.body.witnesses()

    def children(self) -> Sequence[Node]:
        return (self.body,)

    def describe(self) -> str:
        return f"selection {self.name}"


# --------------------------------------------------------------------------- compiling


def _expand(value: SigmaType, placeholders: Mapping[str, Sequence[str]]) -> list[SigmaType]:
    if isinstance(value, SigmaRegularExpression) and value.regexp.contains_placeholder():
        raise CompileError("placeholders inside regular expressions are not supported")
    if not isinstance(value, SigmaString) or not value.contains_placeholder():
        return [value]

    def replace(p: Placeholder) -> Iterator[str]:
        values = placeholders.get(p.name)
        if not values:
            raise PlaceholderMissing(p.name)
        # Configured values are plain text: a user's "*" should not turn into a wildcard.
        yield from values

    return list(value.replace_placeholders(replace))


class RuleCompiler:
    """Compiles one rule's detections under one field mapping."""

    def __init__(
        self,
        detections: SigmaDetections,
        *,
        fieldmap: FieldMap,
        placeholders: Mapping[str, Sequence[str]],
    ) -> None:
        self.detections = detections
        self.fieldmap = fieldmap
        self.placeholders = placeholders
        self._compiled: dict[str, Selection] = {}

    def selection(self, name: str) -> Selection:
        if name not in self._compiled:
            try:
                detection = self.detections.detections[name]
            except KeyError:
                raise CompileError(f"condition references undefined detection {name!r}") from None
            self._compiled[name] = Selection(name, self.detection(detection))
        return self._compiled[name]

    def detection(self, det: SigmaDetection) -> Node:
        items = [
            self.detection(i) if isinstance(i, SigmaDetection) else self.item(i)
            for i in det.detection_items
        ]
        if len(items) == 1:
            return items[0]
        return And(items) if det.item_linking is ConditionAND else Or(items)

    def item(self, item: SigmaDetectionItem) -> Node:
        values: list[SigmaType] = []
        for value in item.value:
            values.extend(_expand(value, self.placeholders))
        all_linked = item.value_linking is ConditionAND
        preds = build_predicates(values, keyword=item.field is None, combine_strings=not all_linked)
        if not preds:
            raise CompileError(f"detection item {item.field!r} has no values")
        if item.field is None:
            node: Node = KeywordItem(preds, all_linked=all_linked)
            return Not(node) if item.negated else node
        names = self.fieldmap.get(item.field, (item.field,))
        label = "|".join(
            [item.field, *(reverse_modifier_mapping[m.__name__] for m in item.modifiers)]
        )
        return FieldItem(label, names, preds, all_linked=all_linked, negated=item.negated)

    def condition(self, tree: ConditionItem | ConditionIdentifier | ConditionSelector) -> Node:
        if isinstance(tree, ConditionIdentifier):
            return self.selection(tree.identifier)
        if isinstance(tree, ConditionSelector):
            names = [c.identifier for c in tree.resolve_referenced_detections(self.detections)]
            if not names:
                raise CompileError(f"'{tree.args[0]} of {tree.pattern}' matches no detection")
            parts: list[Node] = [self.selection(n) for n in names]
            if len(parts) == 1:
                return parts[0]
            return And(parts) if tree.cond_class is ConditionAND else Or(parts)
        if isinstance(tree, ConditionNOT):
            return Not(self.condition(_arg(tree, 0)))
        if isinstance(tree, ConditionAND | ConditionOR):
            args = [self.condition(_arg(tree, i)) for i in range(len(tree.args))]
            return And(args) if isinstance(tree, ConditionAND) else Or(args)
        raise CompileError(f"unsupported condition element {type(tree).__name__}")


def _arg(tree: ConditionItem, i: int) -> ConditionItem | ConditionIdentifier | ConditionSelector:
    arg = tree.args[i]
    if not isinstance(arg, ConditionItem):
        raise CompileError(f"unexpected condition operand {arg!r}")
    return arg


def compile_detection(
    detections: SigmaDetections,
    conditions: Sequence[Callable[[], ConditionItem]],
    *,
    fieldmap: FieldMap,
    placeholders: Mapping[str, Sequence[str]],
) -> tuple[Node, dict[str, Selection]]:
    """Compile the rule's conditions (OR-ed when several) and return the named selections too."""
    compiler = RuleCompiler(detections, fieldmap=fieldmap, placeholders=placeholders)
    trees: list[Node] = []
    for parse in conditions:
        try:
            tree = parse()
        except SigmaError as exc:
            raise CompileError(f"condition: {exc}") from exc
        trees.append(compiler.condition(tree))
    if not trees:
        raise CompileError("rule has no condition")
    root = trees[0] if len(trees) == 1 else Or(trees)
    # Compile every selection, even unused ones, so that errors in them are reported too.
    for name in detections.detections:
        compiler.selection(name)
    return root, compiler._compiled
