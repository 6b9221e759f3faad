"""Per-event evaluation context: field values as strings, lowered lazily and cached.

Many rules look at the same few fields (Image, CommandLine, …); lowering each of them once per
event instead of once per rule is most of what makes case-insensitive matching cheap.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

MISSING: Final = object()

#: Joins the values of an event into the text the candidate index scans. Any separator works for
#: correctness (a literal spanning two values only adds a candidate); this one is rare in logs.
SEPARATOR: Final = "\x1f"


def to_strings(value: Any) -> tuple[str, ...]:
    """The string forms a value is matched as (a list gives one per element)."""
    if isinstance(value, str):
        return (value,)
    if value is None:
        return ()
    if isinstance(value, bool):
        return ("true" if value else "false",)
    if isinstance(value, int | float):
        return (str(value),)
    if isinstance(value, list | tuple):
        out: list[str] = []
        for item in value:
            out.extend(to_strings(item))
        return tuple(out)
    return (orjson.dumps(value, default=str).decode(),)


class EventContext:
    """The fields of one event plus caches of their string forms."""

    __slots__ = ("_all_lower", "_all_raw", "_lower", "_text", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self._lower: dict[str, tuple[str, ...] | None] = {}
        self._all_raw: list[str] | None = None
        self._all_lower: list[str] | None = None
        self._text: str | None = None

    def raw_strings(self, name: str) -> tuple[str, ...] | None:
        value = self.fields.get(name, MISSING)
        if value is MISSING:
            return None
        if isinstance(value, str):
            return (value,)
        return to_strings(value)

    def lower_strings(self, name: str) -> tuple[str, ...] | None:
        cached = self._lower.get(name, MISSING)
        if cached is not MISSING:
            return cached  # type: ignore[return-value]
        value = self.fields.get(name, MISSING)
        if value is MISSING:
            result: tuple[str, ...] | None = None
        elif isinstance(value, str):
            result = (value.lower(),)
        else:
            result = tuple(s.lower() for s in to_strings(value))
        self._lower[name] = result
        return result

    def number_keys(self, name: str) -> list[str]:
        """Canonical texts of the numeric values of a field (for the candidate index)."""
        from vigil.detect.sigma.values import as_number, canonical_number

        value = self.fields.get(name)
        values = value if isinstance(value, list) else (value,)
        out = []
        for v in values:
            n = as_number(v)
            if n is not None:
                out.append(canonical_number(n))
        return out

    def all_raw_strings(self) -> list[str]:
        if self._all_raw is None:
            out: list[str] = []
            for value in self.fields.values():
                if isinstance(value, str):
                    out.append(value)
                else:
                    out.extend(to_strings(value))
            self._all_raw = out
        return self._all_raw

    def all_lower_strings(self) -> list[str]:
        if self._all_lower is None:
            self._all_lower = [s.lower() for s in self.all_raw_strings()]
        return self._all_lower

    def text(self) -> str:
        """All values, lowered and joined: what the candidate index scans."""
        if self._text is None:
            # Same strings as all_raw_strings(), built in one pass: scalars are the common case.
            parts = [
                v if type(v) is str else SEPARATOR.join(to_strings(v)) for v in self.fields.values()
            ]
            self._text = SEPARATOR.join(parts).lower()
        return self._text
