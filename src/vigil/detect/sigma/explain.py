"""Explain why a rule did or did not match an event, for rule authors (`vigil rules test`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.detect.sigma.compiler import FieldItem, KeywordItem, Node, Not, Selection
from vigil.detect.sigma.context import EventContext, to_strings


@dataclass
class Explanation:
    matched: bool
    text: str
    children: list[Explanation] = field(default_factory=list)

    def lines(self, indent: int = 0) -> list[str]:
        mark = "✔" if self.matched else "✘"
        out = [f"{'  ' * indent}{mark} {self.text}"]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out

    def failures(self) -> list[str]:
        """The innermost failing items along the failing branches: the 'why'."""
        if self.matched:
            return []
        failing = [c for c in self.children if not c.matched]
        if not failing or not self.children:
            return [self.text]
        out: list[str] = []
        for child in failing:
            out.extend(child.failures())
        return out


def _shown(ctx: EventContext, names: tuple[str, ...]) -> str:
    parts = []
    for name in names:
        if name in ctx.fields:
            values = to_strings(ctx.fields[name])
            shown = ", ".join(repr(v[:120]) for v in values[:3]) or "null"
            parts.append(f"{name}={shown}")
        else:
            parts.append(f"{name} is absent")
    return "; ".join(parts)


def explain(node: Node, ctx: EventContext) -> Explanation:
    matched = node.match(ctx)
    if isinstance(node, FieldItem):
        preds = "; ".join(p.describe() for p in node.preds)
        link = "all of: " if node.all_linked and len(node.preds) > 1 else ""
        neg = "not " if node.negated else ""
        return Explanation(
            matched, f"{node.describe()} {neg}{link}{preds} — event has {_shown(ctx, node.names)}"
        )
    if isinstance(node, KeywordItem):
        return Explanation(matched, node.describe())
    if isinstance(node, Selection):
        inner = explain(node.body, ctx)
        if not inner.children:
            return Explanation(matched, f"{node.describe()}: {inner.text}")
        return Explanation(matched, node.describe(), [inner])
    if isinstance(node, Not):
        return Explanation(matched, "not", [explain(node.item, ctx)])
    return Explanation(matched, node.describe(), [explain(c, ctx) for c in node.children()])
