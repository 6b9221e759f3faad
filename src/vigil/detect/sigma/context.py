"""Per-event evaluation context: field values as strings, lowered lazily and cached.

Many rules look at the same few fields (Image, CommandLine, …); lowering each of them once per
event instead of once per rule is most of what makes case-insensitive matching cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import orjson

from vigil.speedups import NATIVE

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


class NotFlat(Exception):
    """A field holds a list or a structured value: the generated matchers only handle scalars.

    Raised by :class:`LoweredFields`; the engine then evaluates the event with the reference
    (tree) matchers, which handle every value shape.
    """


class LoweredFields(dict[str, str | None]):
    """Field name -> the lowered string form of a scalar value (None: absent or null).

    What the generated matchers (``codegen.py``) read: a plain dict lookup once filled. The
    generated bucket code fills the fields most rules use inline; any other field is converted
    here on first use. Lists and structured values raise :class:`NotFlat`.
    """

    __slots__ = ("fields",)

    fields: dict[str, Any]

    def __missing__(self, name: str) -> str | None:
        value: Any = self.fields.get(name)
        cls = value.__class__
        if cls is str:
            out: str | None = value.lower()
        elif value is None:
            out = None
        elif cls is int or cls is float:
            out = str(value)  # digits, "inf", "nan", "1e+20": already lower case
        elif cls is bool:
            out = "true" if value else "false"
        else:
            raise NotFlat(name)
        self[name] = out
        return out


class EventContext:
    """The fields of one event plus caches of their string forms."""

    __slots__ = ("_all_lower", "_all_raw", "_lower", "_string_text", "_text", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self._lower: dict[str, tuple[str, ...] | None] = {}
        self._all_raw: list[str] | None = None
        self._all_lower: list[str] | None = None
        self._text: str | None = None
        self._string_text: str | None = None

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
            if _native_lower_join is not None:
                text = _native_lower_join(self.fields, False)
                if text is not None:  # None: a value type the C code leaves to this one
                    self._text = text
                    return text
            values = self.fields.values()
            if _SCALAR_TYPES.issuperset(map(type, values)):
                # str() of a scalar is its string form (lowered below, True becomes "true");
                # None adds "none", which can only add candidates.
                self._text = _lower_join(list(map(str, values)))
            else:
                parts = [v if type(v) is str else SEPARATOR.join(to_strings(v)) for v in values]
                self._text = _lower_join(parts)
        return self._text

    def string_text(self) -> str:
        """Like :meth:`text`, but may leave out integer and null values.

        For literals that no integer's text can contain (they hold a character other than
        ``-`` and digits): cheaper, as the common event is strings, integers and nulls only.
        """
        if self._string_text is None:
            if _native_lower_join is not None:
                text = _native_lower_join(self.fields, True)
                if text is not None:
                    self._string_text = text
                    return text
            # type(v) is a specialised call; v.__class__ a generic attribute lookup.
            parts = [v for v in self.fields.values() if v is not None and type(v) is not int]
            try:
                self._string_text = _lower_join(parts)
            except TypeError:  # floats, booleans, lists, ...: the whole text
                self._string_text = self.text()
        return self._string_text


def _lower_join(parts: list[str]) -> str:
    joined = SEPARATOR.join(parts)
    if joined.isascii():
        return joined.lower()
    try:
        latin1 = joined.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        # Windows events often hold a "®" or "é" (Product, Description): Latin-1 text lowers
        # through a byte table at C speed, to exactly what str.lower() gives.
        return latin1.translate(_LATIN1_LOWER).decode("latin-1")
    # Lowering non-ASCII text is ~5x slower per character: pay it only for the values that
    # need it. (The separator is no cased letter, so lowering parts or the whole is the same.)
    return SEPARATOR.join([p.lower() for p in parts])


#: ``vigil._speedups.lower_join`` (same text, built in one C pass), or None for pure Python.
_native_lower_join: Callable[[dict[str, Any], bool], str | None] | None = (
    NATIVE.lower_join if NATIVE is not None else None
)

_SCALAR_TYPES: Final = frozenset({str, int, float, bool, type(None)})

#: ``str.lower()`` of each Latin-1 character, as a byte table. Building it fails (ValueError or
#: TypeError) if a Latin-1 character ever lowered to several characters or out of Latin-1.
_LATIN1_LOWER: Final = bytes(ord(chr(code).lower()) for code in range(256))
