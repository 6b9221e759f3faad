"""Value predicates: one Sigma value (after pySigma applied its modifiers) to a fast test.

Case-insensitive matching is defined as comparing ``str.lower()`` forms of the pattern and the
event value. The candidate index (``index.py``) relies on exactly this definition: a literal that a
case-insensitive pattern requires is always a substring of the lowered event text.

Every predicate answers ``match(ctx, name)``: does field ``name`` of the event in ``ctx`` hold a
value satisfying it. Event values may be scalars or lists (a list matches when any element does).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
    TimestampPart,
)

from vigil.detect.sigma.context import MISSING, EventContext
from vigil.detect.sigma.errors import CompileError

#: A witness is (kind, lowered literal): "sub" = occurs in a value, "eq" = is a whole value,
#: "num" = a value's number in canonical form (see :func:`canonical_number`).
Witness = tuple[str, str]


# Fragments that occur in most Windows events: a literal made mostly of them says little.
COMMON_FRAGMENTS = (
    "c:\\windows\\system32\\", "c:\\windows\\", "\\system32\\", "c:\\program files",
    "\\appdata\\", "c:\\users\\", "\\microsoft\\", "\\software\\", "\\windows\\",
    "\\currentversion\\", "hklm\\", "hku\\", "\\syswow64\\", ".exe", ".dll",
)  # fmt: skip


def literal_score(literal: str) -> int:
    """How distinctive a (lowered) literal is: its length once common fragments are removed."""
    for fragment in COMMON_FRAGMENTS:
        if fragment in literal:
            literal = literal.replace(fragment, "\x00")
    return len(literal)


class Predicate:
    """A test of one field's value(s)."""

    __slots__ = ()

    def match(self, ctx: EventContext, name: str) -> bool:
        raise NotImplementedError

    def match_any(self, ctx: EventContext) -> bool:
        """Field-less (keyword) search: does any value of the event satisfy the predicate."""
        return any(self.match(ctx, name) for name in ctx.fields)

    def witnesses(self) -> frozenset[Witness] | None:
        """Witnesses of which at least one holds for any value this predicate accepts.

        ``None`` means no such set is known (the predicate can accept values without a literal).
        """
        return None

    def describe(self) -> str:
        raise NotImplementedError


# --------------------------------------------------------------------------- strings


def _merge_parts(s: SigmaString) -> list[str | SpecialChars]:
    parts: list[str | SpecialChars] = []
    for part in s.s:
        if isinstance(part, Placeholder):
            raise CompileError(f"placeholder %{part.name}% was not expanded")
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] = parts[-1] + part
        elif isinstance(part, str) and not part:
            continue
        else:
            parts.append(part)
    return parts


def _wildcard_regex(parts: Sequence[str | SpecialChars], lower: bool) -> str:
    out = []
    for part in parts:
        if part is SpecialChars.WILDCARD_MULTI:
            out.append(".*")
        elif part is SpecialChars.WILDCARD_SINGLE:
            out.append(".")
        else:
            assert isinstance(part, str)
            out.append(re.escape(part.lower() if lower else part))
    return "".join(out)


class StringSet(Predicate):
    """Any of several wildcard strings, against the lowered (or raw, when cased) values.

    Strings are sorted by shape so that the common cases cost one C-level call each:
    equality (set lookup), prefix/suffix (``str.startswith`` with a tuple), substring, and the
    rest as one combined regular expression.
    """

    __slots__ = ("cased", "contains", "ends", "equals", "originals", "regex", "starts", "wit")

    def __init__(self, values: Sequence[SigmaString], *, cased: bool) -> None:
        self.cased = cased
        equals: set[str] = set()
        starts: list[str] = []
        ends: list[str] = []
        contains: list[str] = []
        regexes: list[str] = []
        wit: set[Witness] | None = set()
        self.originals = tuple(str(v) for v in values)
        lower = not cased
        for value in values:
            parts = _merge_parts(value)
            literals = [p for p in parts if isinstance(p, str)]
            best = max(literals, key=len, default="")
            if wit is not None:
                if not any(isinstance(p, SpecialChars) for p in parts):
                    wit.add(("eq", best.lower()))
                elif best:
                    wit.add(("sub", best.lower()))
                else:
                    wit = None
            norm = [p.lower() if (lower and isinstance(p, str)) else p for p in parts]
            many = SpecialChars.WILDCARD_MULTI
            if not any(isinstance(p, SpecialChars) for p in norm):
                equals.add("".join(p for p in norm if isinstance(p, str)))
            elif len(norm) == 2 and norm[0] is many and isinstance(norm[1], str):
                ends.append(norm[1])
            elif len(norm) == 2 and norm[1] is many and isinstance(norm[0], str):
                starts.append(norm[0])
            elif (
                len(norm) == 3 and norm[0] is many and norm[2] is many and isinstance(norm[1], str)
            ):
                contains.append(norm[1])
            elif norm == [many]:
                starts.append("")
            else:
                regexes.append(_wildcard_regex(parts, lower))
        self.equals = frozenset(equals)
        self.starts = tuple(starts)
        self.ends = tuple(ends)
        self.contains = tuple(contains)
        self.regex = (
            re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL) if regexes else None
        )
        self.wit = frozenset(wit) if wit is not None else None

    def test(self, s: str) -> bool:
        if s in self.equals:
            return True
        if self.starts and s.startswith(self.starts):
            return True
        if self.ends and s.endswith(self.ends):
            return True
        for c in self.contains:
            if c in s:
                return True
        return self.regex is not None and self.regex.fullmatch(s) is not None

    def match(self, ctx: EventContext, name: str) -> bool:
        values = ctx.raw_strings(name) if self.cased else ctx.lower_strings(name)
        if values is None:
            return False
        if len(values) == 1:
            return self.test(values[0])
        test = self.test
        return any(test(s) for s in values)

    def match_any(self, ctx: EventContext) -> bool:
        values = ctx.all_raw_strings() if self.cased else ctx.all_lower_strings()
        test = self.test
        return any(test(s) for s in values)

    def witnesses(self) -> frozenset[Witness] | None:
        return self.wit

    def describe(self) -> str:
        shown = ", ".join(repr(o) for o in self.originals[:5])
        more = f", … ({len(self.originals)} values)" if len(self.originals) > 5 else ""
        return f"{'cased ' if self.cased else ''}matches any of {shown}{more}"


# --------------------------------------------------------------------------- scalars


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 0) if text[:2].lower() == "0x" else float(text)
        except ValueError:
            return None
    return None


def canonical_number(number: float) -> str:
    """One text per number, so that 16, 16.0 and "0x10" index alike."""
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def _iter_values(ctx: EventContext, name: str) -> Iterable[Any]:
    value = ctx.fields.get(name, MISSING)
    if value is MISSING:
        return ()
    if isinstance(value, list):
        return value
    return (value,)


class NumberEquals(Predicate):
    __slots__ = ("number", "text")

    def __init__(self, number: float) -> None:
        self.number = number
        self.text = str(number)

    def match(self, ctx: EventContext, name: str) -> bool:
        n = self.number
        return any(as_number(v) == n for v in _iter_values(ctx, name))

    def match_any(self, ctx: EventContext) -> bool:
        # A number used as a keyword is searched as text, like any other keyword.
        text = self.text
        return any(text in s for s in ctx.all_lower_strings())

    def witnesses(self) -> frozenset[Witness] | None:
        return frozenset({("num", canonical_number(self.number))})

    def describe(self) -> str:
        return f"equals {self.text}"


_OPS: dict[CompareOperators, tuple[Callable[[float, float], bool], str]] = {
    CompareOperators.LT: (lambda a, b: a < b, "<"),
    CompareOperators.LTE: (lambda a, b: a <= b, "<="),
    CompareOperators.GT: (lambda a, b: a > b, ">"),
    CompareOperators.GTE: (lambda a, b: a >= b, ">="),
    CompareOperators.NEQ: (lambda a, b: a != b, "!="),
}


def _timestamp_part(value: Any, part: TimestampPart) -> int | None:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        dt = datetime.fromtimestamp(value, UTC)
    else:
        return None
    if part is TimestampPart.MINUTE:
        return dt.minute
    if part is TimestampPart.HOUR:
        return dt.hour
    if part is TimestampPart.DAY:
        return dt.day
    if part is TimestampPart.WEEK:
        return dt.isocalendar().week
    if part is TimestampPart.MONTH:
        return dt.month
    return dt.year


def _equal(a: float, b: float) -> bool:
    return a == b


class Compare(Predicate):
    """Numeric comparison (lt/lte/gt/gte/neq), or equality of a timestamp part."""

    __slots__ = ("fn", "number", "part", "symbol")
    fn: Callable[[float, float], bool]

    def __init__(self, number: float, op: CompareOperators | None, part: TimestampPart | None):
        self.number = number
        self.part = part
        if op is None:
            self.fn, self.symbol = _equal, "=="
        else:
            self.fn, self.symbol = _OPS[op]

    def match(self, ctx: EventContext, name: str) -> bool:
        for v in _iter_values(ctx, name):
            n = as_number(v) if self.part is None else _timestamp_part(v, self.part)
            if n is not None and self.fn(n, self.number):
                return True
        return False

    def describe(self) -> str:
        what = f"{self.part.name.lower()} of value" if self.part else "value"
        return f"{what} {self.symbol} {self.number}"


class BoolEquals(Predicate):
    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def match(self, ctx: EventContext, name: str) -> bool:
        want = self.value
        for v in _iter_values(ctx, name):
            if isinstance(v, bool):
                if v is want:
                    return True
            elif isinstance(v, str) and v.strip().lower() == ("true" if want else "false"):
                return True
        return False

    def describe(self) -> str:
        return f"is {str(self.value).lower()}"


class IsNull(Predicate):
    """``null``: the field is absent or holds null."""

    __slots__ = ()

    def match(self, ctx: EventContext, name: str) -> bool:
        value = ctx.fields.get(name, None)
        return value is None or value == []

    def match_any(self, ctx: EventContext) -> bool:
        return any(v is None for v in ctx.fields.values())

    def describe(self) -> str:
        return "is null or absent"


class Exists(Predicate):
    __slots__ = ("want",)

    def __init__(self, want: bool) -> None:
        self.want = want

    def match(self, ctx: EventContext, name: str) -> bool:
        return (name in ctx.fields) is self.want

    def describe(self) -> str:
        return "exists" if self.want else "does not exist"


def _regex_literal(pattern: re.Pattern[str]) -> str:
    """The longest run of plain characters every match must contain ("" when unsure)."""
    try:
        parsed = re._parser.parse(pattern.pattern, pattern.flags)  # type: ignore[attr-defined]
    except Exception:
        return ""
    literal_op = re._constants.LITERAL  # type: ignore[attr-defined]
    best, run = "", []
    for op, arg in parsed:
        if op is literal_op:
            run.append(chr(arg))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    if len(run) > len(best):
        best = "".join(run)
    return best


def _ignorecase_unsafe() -> frozenset[str] | None:
    """Characters that ``re.IGNORECASE`` equates with a character of another ``str.lower()``.

    E.g. ``s`` and ``ſ`` (long s): ``re.search("s", "ſ", re.I)`` matches, but ``"ſ".lower()`` does
    not contain ``"s"``. A regex literal holding one of them is no sound index witness. ``None``
    when Python's case table is unavailable (then no ignore-case literal is trusted).
    """
    try:
        from re._casefix import _EXTRA_CASES  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - depends on the Python version
        return None
    out: set[str] = set()
    for low, extras in _EXTRA_CASES.items():
        for extra in extras:
            if chr(extra).lower() != chr(low).lower():
                out.update((chr(low), chr(extra)))
    return frozenset(out)


_IGNORECASE_UNSAFE = _ignorecase_unsafe()


def _ignorecase_safe_literal(literal: str) -> str:
    """The longest run of ``literal`` free of characters unsafe under ``re.IGNORECASE``."""
    if _IGNORECASE_UNSAFE is None:
        return ""
    best, run = "", ""
    for ch in literal:
        if ch in _IGNORECASE_UNSAFE or ch.lower() in _IGNORECASE_UNSAFE:
            run = ""
            continue
        run += ch
        if len(run) > len(best):
            best = run
    return best


class Regex(Predicate):
    """``re``: Python's ``re`` with the rule's flags, searched (unanchored) in the raw value."""

    __slots__ = ("literal", "pattern", "text")

    def __init__(self, value: SigmaRegularExpression) -> None:
        flags = 0
        for flag in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
        self.text = str(value.regexp)
        try:
            self.pattern = re.compile(self.text, flags)
        except re.error as exc:
            raise CompileError(f"invalid regular expression {self.text!r}: {exc}") from exc
        # A top-level literal run is needed by every match; the index scans lowered text, and a
        # case-sensitive match of the run implies a case-insensitive one, so lowering is sound.
        literal = _regex_literal(self.pattern)
        if self.pattern.flags & re.IGNORECASE:
            literal = _ignorecase_safe_literal(literal)
        self.literal = literal.lower()

    def witnesses(self) -> frozenset[Witness] | None:
        return frozenset({("sub", self.literal)}) if self.literal else None

    def match(self, ctx: EventContext, name: str) -> bool:
        values = ctx.raw_strings(name)
        if values is None:
            return False
        search = self.pattern.search
        return any(search(s) is not None for s in values)

    def match_any(self, ctx: EventContext) -> bool:
        search = self.pattern.search
        return any(search(s) is not None for s in ctx.all_raw_strings())

    def describe(self) -> str:
        return f"matches regex /{self.text}/"


class Cidr(Predicate):
    __slots__ = ("network",)

    def __init__(self, value: SigmaCIDRExpression) -> None:
        self.network = value.network

    def match(self, ctx: EventContext, name: str) -> bool:
        values = ctx.raw_strings(name)
        if values is None:
            return False
        net = self.network
        for s in values:
            try:
                addr = ipaddress.ip_address(s.strip().strip("[]"))
            except ValueError:
                continue
            if addr.version == net.version and addr in net:
                return True
        return False

    def describe(self) -> str:
        return f"is an address in {self.network}"


class FieldRef(Predicate):
    """``fieldref``: compare with another field of the same event (case-insensitively).

    With ``contains``/``startswith``/``endswith`` the field's value contains / starts with / ends
    with the referenced field's value (pySigma's backends: ``field1 LIKE field2 || '%'``).
    """

    __slots__ = ("ends", "other", "starts")

    def __init__(self, value: SigmaFieldReference) -> None:
        self.other = value.field
        self.starts = value.starts_with
        self.ends = value.ends_with

    def match(self, ctx: EventContext, name: str) -> bool:
        mine = ctx.lower_strings(name)
        theirs = ctx.lower_strings(self.other)
        if mine is None or theirs is None:
            return False
        for a in mine:
            for b in theirs:
                if self.starts and self.ends:
                    ok = b in a
                elif self.starts:
                    ok = a.startswith(b)
                elif self.ends:
                    ok = a.endswith(b)
                else:
                    ok = a == b
                if ok:
                    return True
        return False

    def describe(self) -> str:
        if self.starts and self.ends:
            return f"contains the value of field {self.other}"
        if self.starts:
            return f"starts with the value of field {self.other}"
        if self.ends:
            return f"ends with the value of field {self.other}"
        return f"equals field {self.other}"


class AnyOf(Predicate):
    """A modifier expansion (base64offset, windash, placeholders): OR of its values."""

    __slots__ = ("preds",)

    def __init__(self, preds: Sequence[Predicate]) -> None:
        self.preds = tuple(preds)

    def match(self, ctx: EventContext, name: str) -> bool:
        return any(p.match(ctx, name) for p in self.preds)

    def match_any(self, ctx: EventContext) -> bool:
        return any(p.match_any(ctx) for p in self.preds)

    def witnesses(self) -> frozenset[Witness] | None:
        out: set[Witness] = set()
        for p in self.preds:
            w = p.witnesses()
            if w is None:
                return None
            out |= w
        return frozenset(out)

    def describe(self) -> str:
        return "any of (" + "; ".join(p.describe() for p in self.preds) + ")"


# --------------------------------------------------------------------------- building


def as_keyword(value: SigmaString) -> SigmaString:
    """A field-less plain string is searched as a substring of any value (full-text search)."""
    if value.contains_special():
        return value
    wrapped = SpecialChars.WILDCARD_MULTI + value
    return wrapped + SpecialChars.WILDCARD_MULTI


def build_predicates(
    values: Sequence[SigmaType], *, keyword: bool, combine_strings: bool
) -> list[Predicate]:
    """Compile a detection item's values into predicates.

    With ``combine_strings`` (OR-linked values) all plain strings become one :class:`StringSet`;
    otherwise (``all``) each value stays its own predicate.
    """
    preds: list[Predicate] = []
    plain: list[SigmaString] = []
    cased: list[SigmaString] = []
    for value in values:
        if isinstance(value, SigmaString):
            target = cased if isinstance(value, SigmaCasedString) else plain
            v = as_keyword(value) if keyword else value
            if combine_strings:
                target.append(v)
            else:
                preds.append(StringSet([v], cased=target is cased))
        else:
            preds.append(build_scalar(value, keyword=keyword))
    if plain:
        preds.insert(0, StringSet(plain, cased=False))
    if cased:
        preds.insert(0, StringSet(cased, cased=True))
    return preds


def build_scalar(value: SigmaType, *, keyword: bool) -> Predicate:
    if isinstance(value, SigmaString):
        return StringSet(
            [as_keyword(value) if keyword else value], cased=isinstance(value, SigmaCasedString)
        )
    if isinstance(value, SigmaCompareExpression):
        number = value.number
        part = number.timestamp_part if isinstance(number, SigmaTimestampPart) else None
        return Compare(float(number.number), value.op, part)
    if isinstance(value, SigmaTimestampPart):
        return Compare(float(value.number), None, value.timestamp_part)
    if isinstance(value, SigmaNumber):
        return NumberEquals(value.number)
    if isinstance(value, SigmaBool):
        return BoolEquals(value.boolean)
    if isinstance(value, SigmaNull):
        return IsNull()
    if isinstance(value, SigmaExists):
        return Exists(value.exists)
    if isinstance(value, SigmaRegularExpression):
        return Regex(value)
    if isinstance(value, SigmaCIDRExpression):
        return Cidr(value)
    if isinstance(value, SigmaFieldReference):
        return FieldRef(value)
    if isinstance(value, SigmaExpansion):
        return AnyOf(build_predicates(value.values, keyword=keyword, combine_strings=True))
    raise CompileError(f"unsupported value type {type(value).__name__}")
