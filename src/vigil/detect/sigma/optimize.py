"""Slim a compiled rule tree for matching: the explainable tree keeps named selections and
nesting for `vigil rules test`; the matcher drops what only explanations need.

- ``Selection`` wrappers disappear (their body is matched directly);
- nested ``And``/``Or`` of the same kind are flattened, single-child ones replaced by the child;
- ``Not(Not(x))`` becomes ``x``.
Each step removes one Python call per event from the hot path and none changes the result.
"""

from __future__ import annotations

from vigil.detect.sigma.compiler import And, Node, Not, Or, Selection


def slim(node: Node) -> Node:
    if isinstance(node, Selection):
        return slim(node.body)
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
