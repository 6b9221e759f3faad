"""Slim a compiled rule tree for matching: the explainable tree keeps named selections and
nesting for `vigil rules test`; the matcher drops what only explanations need.

- ``Selection`` wrappers disappear (their body is matched directly);
- nested ``And``/``Or`` of the same kind are flattened, single-child ones replaced by the child;
- ``Not(Not(x))`` becomes ``x``.
Each step removes one Python call per event from the hot path and none changes the result.
"""

from __future__ import annotations

from vigil.detect.sigma.compiler import And, FieldItem, Node, Not, Or, Selection, Witnesses
from vigil.detect.sigma.context import EventContext
from vigil.detect.sigma.values import StringSet


class StringField(Node):
    """``Field: [strings]`` on one event field, case-insensitive: the most common item of all,
    matched here in one call instead of three (item, predicate, test)."""

    __slots__ = ("item", "name", "negated", "strings")

    def __init__(self, item: FieldItem, strings: StringSet) -> None:
        self.item = item
        self.name = item.names[0]
        self.negated = item.negated
        self.strings = strings

    def match(self, ctx: EventContext) -> bool:
        values = ctx.lower_strings(self.name)
        if values is None:
            return self.negated
        ss = self.strings
        for s in values:
            if (
                s in ss.equals
                or (ss.starts and s.startswith(ss.starts))
                or (ss.ends and s.endswith(ss.ends))
            ):
                return not self.negated
            for c in ss.contains:
                if c in s:
                    return not self.negated
            if ss.regex is not None and ss.regex.fullmatch(s) is not None:
                return not self.negated
        return self.negated

    def witnesses(self) -> Witnesses:
        return self.item.witnesses()

    def describe(self) -> str:
        return self.item.describe()


def slim(node: Node) -> Node:
    if isinstance(node, Selection):
        return slim(node.body)
    if (
        isinstance(node, FieldItem)
        and len(node.names) == 1
        and len(node.preds) == 1
        and isinstance(node.preds[0], StringSet)
        and not node.preds[0].cased
    ):
        return StringField(node, node.preds[0])
    if isinstance(node, Not):
        inner = slim(node.item)
        return inner.item if isinstance(inner, Not) else Not(inner)
    if isinstance(node, And | Or):
        kind = type(node)
        items: list[Node] = []
        for child in node.items:
            child = slim(child)
            if type(child) is kind:
                assert isinstance(child, And | Or)
                items.extend(child.items)
            else:
                items.append(child)
        if len(items) == 1:
            return items[0]
        return kind(items)
    return node
