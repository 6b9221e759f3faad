"""Vigil's logsource mapping: which events a Sigma rule is evaluated against.

A Sigma rule names a *logsource* (``product``/``category``/``service``); events are flat dicts
of Sigma field names (``Channel``, ``EventID``, ...). The mapping, shipped as ``logsources.yml``
next to this module and extensible by user files, says for each logsource which events belong
to it (``conditions`` and/or a logsource ``hint``) and how the rule's field names are renamed
for those events (``fieldmappings``). The file format is documented at the top of
``logsources.yml``.

Semantics, in short:

* An entry *applies* to a rule when every key of ``entry.logsource`` is in the rule's logsource
  with the same value (case-insensitive). Of the applicable entries only the most specific ones
  (most keys) are kept; their sources are OR-ed (:meth:`LogsourceMapping.resolve`).
* A source matches an event when its ``conditions`` hold (AND of fields; a tuple of values means
  any of them) OR, if ``hint`` is set, when the event's logsource hint is compatible with the
  entry's logsource (:func:`hint_compatible`). Evaluating conditions against events (including
  case-insensitive string comparison) is the compiler's job; values are kept as written.
* ``fieldmappings`` rename a rule's Sigma field to the event field(s) holding it for events
  matched by that source; a tuple means the value may be in any of these fields. Renames are
  applied once, never chained.
* User files (``load_mapping(paths)``) are applied in order on top of the shipped file: an entry
  with the same name replaces the earlier one, a new name adds an entry, and ``sources: []``
  disables an entry. A disabled entry still takes part in the specificity contest, so disabling
  ``windows-process-creation`` stops process_creation rules instead of letting a less specific
  entry (e.g. ``windows``) catch them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from vigil.detect.sigma.errors import MappingError

__all__ = [
    "LOGSOURCE_KEYS",
    "SUPPORTED_VERSION",
    "ConditionValue",
    "LogsourceEntry",
    "LogsourceMapping",
    "LogsourceSource",
    "MappingError",
    "Resolution",
    "SourceCondition",
    "default_mapping_path",
    "hint_compatible",
    "load_mapping",
    "load_mapping_file",
    "normalize_logsource",
]

#: The logsource attributes the mapping understands; other keys of a rule's logsource
#: (``definition``, custom ones) are ignored.
LOGSOURCE_KEYS: tuple[str, ...] = ("product", "category", "service")
SUPPORTED_VERSION = 1

ConditionValue = str | int

_K = TypeVar("_K")
_V = TypeVar("_V")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_ENTRY_KEYS = frozenset({"logsource", "sources", "description"})
_SOURCE_KEYS = frozenset({"conditions", "fieldmappings", "hint"})
_TOP_KEYS = frozenset({"version", "logsources"})


class _FrozenMap(Mapping[_K, _V]):
    """An immutable, hashable mapping (so the dataclasses below stay hashable)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data: dict[_K, _V] = dict(data)
        self._hash: int | None = None

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._data == dict(other.items())
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)


def _freeze(data: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return data if isinstance(data, _FrozenMap) else _FrozenMap(data)


def _empty_map() -> Mapping[Any, Any]:
    return _FrozenMap()


def normalize_logsource(logsource: Mapping[str, str | None]) -> dict[str, str]:
    """Keep the ``product``/``category``/``service`` keys of ``logsource`` that have a value,
    with keys and values lower-cased and stripped."""
    out: dict[str, str] = {}
    for key, value in logsource.items():
        k = str(key).strip().lower()
        if k in LOGSOURCE_KEYS and isinstance(value, str) and value.strip():
            out[k] = value.strip().lower()
    return out


def _applies(entry_logsource: Mapping[str, str], target: Mapping[str, str]) -> bool:
    """``target`` (normalized) has every key of ``entry_logsource`` with the same value."""
    return all(target.get(key) == value.lower() for key, value in entry_logsource.items())


def hint_compatible(
    entry_logsource: Mapping[str, str], hint: Mapping[str, str | None] | None
) -> bool:
    """Whether an event's logsource ``hint`` is compatible with an entry's logsource.

    Compatible means the hint has every key of the entry's logsource with the same value
    (case-insensitive); extra keys in the hint are ignored. It is the same test as "the entry
    applies to a rule whose logsource is the hint": a hint ``{product: aws, service:
    cloudtrail}`` matches the entry ``{product: aws, service: cloudtrail}``, a hint ``{product:
    aws}`` does not (it does not say which AWS log it is), and a missing or empty hint never
    matches.
    """
    if not hint or not entry_logsource:
        return False
    return _applies(entry_logsource, normalize_logsource(hint))


@dataclass(frozen=True, slots=True)
class SourceCondition:
    """One field condition of a source: ``field`` equals any of ``values``."""

    field: str
    values: tuple[ConditionValue, ...]


@dataclass(frozen=True, slots=True)
class LogsourceSource:
    """One alternative way an event can belong to a logsource entry.

    ``conditions`` are AND-ed (each field equals any of its values); ``hint`` adds, OR-ed, "the
    event's logsource hint is compatible with the entry". ``fieldmappings`` maps a Sigma field
    to the event field(s) holding it for events matched by this source.
    """

    conditions: Mapping[str, tuple[ConditionValue, ...]] = field(default_factory=_empty_map)
    fieldmappings: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_map)
    hint: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "conditions", _freeze(self.conditions))
        object.__setattr__(self, "fieldmappings", _freeze(self.fieldmappings))

    @property
    def condition_items(self) -> tuple[SourceCondition, ...]:
        """The conditions as :class:`SourceCondition` objects, in file order."""
        return tuple(SourceCondition(name, values) for name, values in self.conditions.items())

    def event_fields(self, sigma_field: str) -> tuple[str, ...]:
        """The event field(s) that hold ``sigma_field`` for events of this source."""
        return self.fieldmappings.get(sigma_field, (sigma_field,))


@dataclass(frozen=True, slots=True)
class LogsourceEntry:
    """A named mapping entry: the logsource it serves and its alternative sources.

    ``logsource`` keys and values are lower-case. An entry with no sources is disabled.
    """

    name: str
    logsource: Mapping[str, str]
    sources: tuple[LogsourceSource, ...]
    description: str = ""
    #: The file the entry was read from (``None`` when built in code).
    origin: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "logsource", _freeze(self.logsource))
        object.__setattr__(self, "sources", tuple(self.sources))

    @property
    def specificity(self) -> int:
        return len(self.logsource)

    @property
    def disabled(self) -> bool:
        return not self.sources

    def applies_to(self, logsource: Mapping[str, str | None]) -> bool:
        """Whether this entry applies to a rule with ``logsource``."""
        return bool(self.logsource) and _applies(self.logsource, normalize_logsource(logsource))

    def accepts_hint(self, hint: Mapping[str, str | None] | None) -> bool:
        """Whether an event with logsource ``hint`` matches this entry's ``hint: true`` sources
        (see :func:`hint_compatible`); ``False`` when no source has ``hint: true``."""
        return any(s.hint for s in self.sources) and hint_compatible(self.logsource, hint)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What a rule's logsource resolves to.

    ``entries`` are the most specific applicable entries (possibly disabled ones); an empty
    resolution (``not resolution``) means no event can match the rule: either no entry applies
    (``entries == ()``) or the applicable entries are disabled (``disabled``).
    """

    logsource: Mapping[str, str]
    entries: tuple[LogsourceEntry, ...]

    @property
    def pairs(self) -> tuple[tuple[LogsourceEntry, LogsourceSource], ...]:
        """Every (entry, source) alternative, OR-ed."""
        return tuple((entry, source) for entry in self.entries for source in entry.sources)

    @property
    def sources(self) -> tuple[LogsourceSource, ...]:
        """The sources of all the entries, OR-ed (duplicates removed, order kept)."""
        return tuple(dict.fromkeys(source for _, source in self.pairs))

    @property
    def matched(self) -> bool:
        """At least one entry applies (even if disabled)."""
        return bool(self.entries)

    @property
    def disabled(self) -> bool:
        """Entries apply but all of them are disabled."""
        return bool(self.entries) and all(e.disabled for e in self.entries)

    @property
    def uses_hint(self) -> bool:
        return any(s.hint for s in self.sources)

    def accepts_hint(self, hint: Mapping[str, str | None] | None) -> bool:
        """Whether an event with this logsource hint matches through a ``hint: true`` source."""
        return any(entry.accepts_hint(hint) for entry in self.entries)

    def __bool__(self) -> bool:
        return any(entry.sources for entry in self.entries)


class LogsourceMapping:
    """An ordered set of uniquely named :class:`LogsourceEntry` objects."""

    __slots__ = ("_by_name", "_cache")

    def __init__(self, entries: Iterable[LogsourceEntry] = ()) -> None:
        by_name: dict[str, LogsourceEntry] = {}
        for entry in entries:
            if entry.name in by_name:
                raise MappingError([f"duplicate entry name {entry.name!r}"])
            by_name[entry.name] = entry
        self._by_name = by_name
        self._cache: dict[frozenset[tuple[str, str]], Resolution] = {}

    @property
    def entries(self) -> tuple[LogsourceEntry, ...]:
        return tuple(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def __iter__(self) -> Iterator[LogsourceEntry]:
        return iter(self._by_name.values())

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> LogsourceEntry:
        return self._by_name[name]

    def get(self, name: str) -> LogsourceEntry | None:
        return self._by_name.get(name)

    def __repr__(self) -> str:
        return f"LogsourceMapping({len(self)} entries)"

    def extended(self, entries: Iterable[LogsourceEntry]) -> LogsourceMapping:
        """A new mapping with ``entries`` added; an entry with an existing name replaces it
        (keeping its position)."""
        by_name = dict(self._by_name)
        for entry in entries:
            by_name[entry.name] = entry
        return LogsourceMapping(by_name.values())

    def resolve(self, logsource: Mapping[str, str | None]) -> Resolution:
        """Resolve a rule's logsource to the most specific applicable entries.

        Only ``product``/``category``/``service`` are considered, case-insensitively.
        """
        wanted = normalize_logsource(logsource)
        key = frozenset(wanted.items())
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        applicable = [
            e for e in self._by_name.values() if e.logsource and _applies(e.logsource, wanted)
        ]
        best = max((e.specificity for e in applicable), default=0)
        result = Resolution(
            logsource=_FrozenMap(wanted),
            entries=tuple(e for e in applicable if e.specificity == best),
        )
        self._cache[key] = result
        return result


# --------------------------------------------------------------------------------------------
# Loading and validation
# --------------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys (a repeated entry name would otherwise
    silently replace the first one)."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        try:
            duplicate = key in seen
        except TypeError:
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    return dict(yaml.SafeLoader.construct_mapping(loader, node))


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def default_mapping_path() -> Path:
    """The mapping shipped with Vigil."""
    return Path(__file__).with_name("logsources.yml")


def _describe(value: object) -> str:
    return "null" if value is None else type(value).__name__


class _Validator:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.errors: list[str] = []

    def error(self, message: str, entry: str | None = None) -> None:
        where = f"{self.path}: entry {entry!r}: " if entry is not None else f"{self.path}: "
        self.errors.append(where + message)

    def document(self, data: object) -> list[LogsourceEntry]:
        if not isinstance(data, dict):
            self.error(f"expected a mapping with 'version' and 'logsources', got {_describe(data)}")
            return []
        for key in data:
            if key not in _TOP_KEYS:
                self.error(f"unknown top-level key {key!r} (expected: version, logsources)")
        if "version" not in data:
            self.error(f"missing 'version' (expected {SUPPORTED_VERSION})")
        elif data["version"] != SUPPORTED_VERSION or isinstance(data["version"], bool):
            self.error(f"unsupported version {data['version']!r} (expected {SUPPORTED_VERSION})")
        if "logsources" not in data:
            self.error("missing 'logsources'")
            return []
        raw_entries = data["logsources"]
        if not isinstance(raw_entries, dict):
            self.error(
                f"'logsources' must be a mapping of entry names, got {_describe(raw_entries)}"
            )
            return []
        entries: list[LogsourceEntry] = []
        for name, raw in raw_entries.items():
            entry = self.entry(name, raw)
            if entry is not None:
                entries.append(entry)
        return entries

    def entry(self, name: object, raw: object) -> LogsourceEntry | None:
        label = str(name)
        ok = True
        if not isinstance(name, str) or not _NAME_RE.match(name):
            self.error(
                "invalid entry name (letters, digits, '_', '-', '.'; starting with a letter "
                "or digit)",
                label,
            )
            ok = False
        if not isinstance(raw, dict):
            self.error(
                f"expected a mapping with 'logsource' and 'sources', got {_describe(raw)}", label
            )
            return None
        for key in raw:
            if key not in _ENTRY_KEYS:
                self.error(
                    f"unknown key {key!r} (expected: logsource, sources, description)", label
                )
                ok = False
        logsource = self.logsource(label, raw.get("logsource"), "logsource" in raw)
        sources = self.sources(label, raw.get("sources"), "sources" in raw)
        description = raw.get("description", "")
        if not isinstance(description, str):
            self.error(f"'description' must be a string, got {_describe(description)}", label)
            ok = False
        if not ok or logsource is None or sources is None:
            return None
        return LogsourceEntry(
            name=label,
            logsource=logsource,
            sources=sources,
            description=description,
            origin=self.path,
        )

    def logsource(self, entry: str, raw: object, present: bool) -> dict[str, str] | None:
        if not present:
            self.error("missing 'logsource'", entry)
            return None
        if not isinstance(raw, dict) or not raw:
            self.error(
                "'logsource' must be a non-empty mapping of product/category/service, "
                f"got {_describe(raw) if not isinstance(raw, dict) else 'an empty mapping'}",
                entry,
            )
            return None
        out: dict[str, str] = {}
        ok = True
        for key, value in raw.items():
            if key not in LOGSOURCE_KEYS:
                self.error(
                    f"logsource: unknown key {key!r} (expected: product, category, service)", entry
                )
                ok = False
            elif not isinstance(value, str) or not value.strip():
                self.error(
                    f"logsource.{key}: expected a non-empty string, got {_describe(value)}", entry
                )
                ok = False
            else:
                out[key] = value.strip().lower()
        return out if ok else None

    def sources(self, entry: str, raw: object, present: bool) -> tuple[LogsourceSource, ...] | None:
        if not present:
            self.error("missing 'sources' (use 'sources: []' to disable an entry)", entry)
            return None
        if not isinstance(raw, list):
            self.error(f"'sources' must be a list, got {_describe(raw)}", entry)
            return None
        out: list[LogsourceSource] = []
        ok = True
        for index, item in enumerate(raw):
            source = self.source(entry, f"sources[{index}]", item)
            if source is None:
                ok = False
            else:
                out.append(source)
        return tuple(out) if ok else None

    def source(self, entry: str, where: str, raw: object) -> LogsourceSource | None:
        if not isinstance(raw, dict):
            self.error(f"{where}: expected a mapping, got {_describe(raw)}", entry)
            return None
        ok = True
        for key in raw:
            if key not in _SOURCE_KEYS:
                self.error(
                    f"{where}: unknown key {key!r} (expected: conditions, fieldmappings, hint)",
                    entry,
                )
                ok = False
        hint = raw.get("hint", False)
        if not isinstance(hint, bool):
            self.error(f"{where}.hint: expected true or false, got {_describe(hint)}", entry)
            ok = False
            hint = False
        conditions = self.conditions(entry, where, raw.get("conditions", {}))
        fieldmappings = self.fieldmappings(entry, where, raw.get("fieldmappings", {}))
        if conditions is None or fieldmappings is None:
            return None
        if not conditions and not hint:
            self.error(
                f"{where}: needs non-empty 'conditions' or 'hint: true' (an empty condition "
                "would match every event)",
                entry,
            )
            return None
        if not ok:
            return None
        return LogsourceSource(conditions=conditions, fieldmappings=fieldmappings, hint=hint)

    def conditions(
        self, entry: str, where: str, raw: object
    ) -> dict[str, tuple[ConditionValue, ...]] | None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.error(f"{where}.conditions: expected a mapping, got {_describe(raw)}", entry)
            return None
        out: dict[str, tuple[ConditionValue, ...]] = {}
        ok = True
        for field_name, value in raw.items():
            label = f"{where}.conditions.{field_name}"
            if not isinstance(field_name, str) or not field_name:
                self.error(f"{where}.conditions: field names must be non-empty strings", entry)
                ok = False
                continue
            values = value if isinstance(value, list) else [value]
            if not values:
                self.error(f"{label}: empty list (would match nothing)", entry)
                ok = False
                continue
            good: list[ConditionValue] = []
            for v in values:
                if isinstance(v, bool) or not isinstance(v, str | int):
                    hint = " (quote it if a string is meant)" if isinstance(v, bool) else ""
                    self.error(
                        f"{label}: expected a string or integer, got {_describe(v)}{hint}", entry
                    )
                    ok = False
                else:
                    good.append(v)
            out[field_name] = tuple(good)
        return out if ok else None

    def fieldmappings(
        self, entry: str, where: str, raw: object
    ) -> dict[str, tuple[str, ...]] | None:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.error(f"{where}.fieldmappings: expected a mapping, got {_describe(raw)}", entry)
            return None
        out: dict[str, tuple[str, ...]] = {}
        ok = True
        for sigma_field, value in raw.items():
            label = f"{where}.fieldmappings.{sigma_field}"
            if not isinstance(sigma_field, str) or not sigma_field:
                self.error(f"{where}.fieldmappings: field names must be non-empty strings", entry)
                ok = False
                continue
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) and v for v in values):
                self.error(
                    f"{label}: expected an event field name or a non-empty list of them, "
                    f"got {value!r}",
                    entry,
                )
                ok = False
                continue
            out[sigma_field] = tuple(values)
        return out if ok else None


def _parse_file(path: Path) -> tuple[list[LogsourceEntry], list[str]]:
    validator = _Validator(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        validator.error(f"cannot read: {exc}")
        return [], validator.errors
    try:
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        validator.error(f"invalid YAML: {exc}")
        return [], validator.errors
    entries = validator.document(data)
    return entries, validator.errors


def load_mapping_file(path: Path) -> list[LogsourceEntry]:
    """Read and validate one mapping file (raises :class:`MappingError` with every problem)."""
    entries, errors = _parse_file(Path(path))
    if errors:
        raise MappingError(errors, (Path(path),))
    return entries


def load_mapping(paths: Sequence[Path] = ()) -> LogsourceMapping:
    """The shipped mapping extended by each user file in ``paths``, in order.

    An entry with the same name as an earlier one replaces it; ``sources: []`` disables it.
    Every file is validated before anything is returned; all problems of all files are
    reported together in one :class:`MappingError`.
    """
    all_paths = (default_mapping_path(), *(Path(p) for p in paths))
    errors: list[str] = []
    mapping = LogsourceMapping()
    for path in all_paths:
        entries, file_errors = _parse_file(path)
        errors.extend(file_errors)
        if not file_errors:
            mapping = mapping.extended(entries)
    if errors:
        raise MappingError(errors, all_paths)
    return mapping
