"""Load Sigma rule files and folders with pySigma, collecting every failure with its location.

Nothing is silently dropped: each document that does not become a compiled rule (or a
correlation rule, or a filter) appears in :attr:`LoadResult.failures` with its file, rule id and
the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError, SigmaRuleLocation
from sigma.filters import SigmaFilter
from sigma.modifiers import SigmaWideModifier, modifier_mapping
from sigma.rule import SigmaRule

from vigil.detect.correlate.compiler import stash_range_condition
from vigil.detect.sigma.compiler import Node, PlaceholderMissing, Selection, compile_detection
from vigil.detect.sigma.errors import CompileError
from vigil.detect.sigma.mapping import LogsourceMapping, LogsourceSource
from vigil.detect.sigma.optimize import slim

RULE_SUFFIXES = (".yml", ".yaml")

# The modifiers appendix names `utf16le` (with `wide` as its alias); pySigma 2.0.1 only knows
# `wide`. pySigma's detection parser looks modifiers up in this very dict.
modifier_mapping.setdefault("utf16le", SigmaWideModifier)

try:  # libyaml is much faster on 3,000+ rule files; fall back to the pure-Python loader
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _YamlLoader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a detection reports about the rule that made it."""

    id: str | None
    name: str | None
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    path: str
    logsource: Mapping[str, str]
    description: str | None = None
    falsepositives: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Variant:
    """The rule compiled for one source of its logsource (each source may rename fields)."""

    source: LogsourceSource | None  # None: the rule's logsource is not in the mapping
    node: Node  # the explainable tree (named selections kept)
    selections: Mapping[str, Selection]
    matcher: Node  # the same logic slimmed for the hot path (see optimize.py)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    info: RuleInfo
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class RuleFailure:
    path: str
    rule_id: str | None
    title: str | None
    reason: str
    #: "error" (broken rule) or "placeholder" (needs `expand` values nobody configured)
    kind: str = "error"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rule_id": self.rule_id,
            "title": self.title,
            "reason": self.reason,
            "kind": self.kind,
        }


@dataclass
class LoadResult:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[SigmaCorrelationRule] = field(default_factory=list)
    #: Base rules as pySigma objects, by id and name: correlation rules reference them.
    failures: list[RuleFailure] = field(default_factory=list)
    files: int = 0


def iter_rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Rule files under ``paths`` (files are taken as given; folders are searched recursively)."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file()
            )
        else:
            yield path


def _rule_id(doc: Any) -> str | None:
    if isinstance(doc, dict) and doc.get("id") is not None:
        return str(doc["id"])
    return None


def _title(doc: Any) -> str | None:
    if isinstance(doc, dict) and doc.get("title") is not None:
        return str(doc["title"])
    return None


def _error_text(errors: Sequence[Exception]) -> str:
    return "; ".join(str(e).replace("\n", " ") for e in errors)


def parse_file(
    path: Path, result: LoadResult
) -> list[SigmaRule | SigmaCorrelationRule | SigmaFilter]:
    """Parse one file into pySigma objects; failures go into ``result``."""
    source = SigmaRuleLocation(path)
    try:
        text = path.read_text(encoding="utf-8")
        # Correlation range conditions (gt + lte …) are valid Sigma that pySigma rejects; the
        # correlation compiler keeps them aside and reads them back.
        docs = [
            stash_range_condition(d)
            for d in yaml.load_all(text, Loader=_YamlLoader)
            if d is not None
        ]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        result.failures.append(RuleFailure(str(path), None, None, f"cannot read rule file: {exc}"))
        return []
    parsed: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = []
    for doc in docs:
        try:
            collection = SigmaCollection.from_dicts(
                [doc],
                collect_errors=True,
                source=source,
                collect_filters=True,
                resolve_references=False,
            )
        except (SigmaError, Exception) as exc:  # pySigma raises more than SigmaError on odd input
            result.failures.append(RuleFailure(str(path), _rule_id(doc), _title(doc), str(exc)))
            continue
        objects: list[SigmaRule | SigmaCorrelationRule | SigmaFilter] = [
            *collection.rules,
            *collection.filters,
        ]
        if collection.errors and not objects:
            result.failures.append(
                RuleFailure(str(path), _rule_id(doc), _title(doc), _error_text(collection.errors))
            )
            continue
        for obj in objects:
            if obj.errors:
                result.failures.append(
                    RuleFailure(
                        str(path),
                        str(obj.id) if obj.id else _rule_id(doc),
                        obj.title or _title(doc),
                        _error_text(obj.errors),
                    )
                )
            else:
                parsed.append(obj)
    return parsed


def rule_info(rule: SigmaRule, path: str) -> RuleInfo:
    ls = rule.logsource
    logsource = {
        k: v
        for k, v in (("product", ls.product), ("category", ls.category), ("service", ls.service))
        if v
    }
    return RuleInfo(
        id=str(rule.id) if rule.id else None,
        name=rule.name,
        title=rule.title,
        level=rule.level.name.lower() if rule.level else None,
        status=rule.status.name.lower() if rule.status else None,
        tags=tuple(str(t) for t in rule.tags),
        path=path,
        logsource=logsource,
        description=rule.description,
        falsepositives=tuple(rule.falsepositives or ()),
    )


def compile_rule(
    rule: SigmaRule,
    *,
    path: str,
    mapping: LogsourceMapping,
    placeholders: Mapping[str, Sequence[str]],
) -> CompiledRule:
    """Compile a parsed rule once per distinct field mapping of the sources its logsource maps to.

    Raises :class:`CompileError` (or :class:`PlaceholderMissing`) with the reason.
    """
    info = rule_info(rule, path)
    resolution = mapping.resolve(info.logsource)
    # Unmapped logsources are reached through event hints only (source None); a logsource
    # whose entries the user disabled (`sources: []`) is loaded but reaches no event.
    sources: Sequence[LogsourceSource | None] = resolution.sources or (
        [] if resolution.disabled else [None]
    )
    conditions = [c.parse for c in rule.detection.parsed_condition]
    by_fieldmap: dict[
        tuple[tuple[str, tuple[str, ...]], ...], tuple[Node, dict[str, Selection]]
    ] = {}
    matchers: dict[tuple[tuple[str, tuple[str, ...]], ...], Node] = {}
    variants = []
    for src in sources:
        fieldmap = dict(src.fieldmappings) if src is not None else {}
        key = tuple(sorted(fieldmap.items()))
        if key not in by_fieldmap:
            by_fieldmap[key] = compile_detection(
                rule.detection,
                [lambda c=c: c(postprocess=False) for c in conditions],  # type: ignore[misc]
                fieldmap=fieldmap,
                placeholders=placeholders,
            )
            matchers[key] = slim(by_fieldmap[key][0])
        node, selections = by_fieldmap[key]
        variants.append(Variant(src, node, selections, matchers[key]))
    return CompiledRule(info, tuple(variants))


def load_rules(
    paths: Iterable[Path],
    *,
    mapping: LogsourceMapping,
    placeholders: Mapping[str, Sequence[str]] | None = None,
) -> LoadResult:
    """Load, filter and compile every rule under ``paths``."""
    result = LoadResult()
    placeholders = placeholders or {}
    objects: list[tuple[Path, SigmaRule | SigmaCorrelationRule | SigmaFilter]] = []
    for path in iter_rule_files(paths):
        result.files += 1
        objects.extend((path, obj) for obj in parse_file(path, result))

    filters = [o for _, o in objects if isinstance(o, SigmaFilter)]
    rules: list[tuple[Path, SigmaRule | SigmaCorrelationRule]] = [
        (p, o) for p, o in objects if not isinstance(o, SigmaFilter)
    ]
    collection = SigmaCollection([o for _, o in rules], resolve_references=False)  # type: ignore[call-arg]

    for path, obj in rules:
        rid = str(obj.id) if obj.id else None
        if isinstance(obj, SigmaCorrelationRule):
            try:
                obj.resolve_rule_references(collection)
            except SigmaError as exc:
                result.failures.append(RuleFailure(str(path), rid, obj.title, str(exc)))
                continue
            result.correlations.append(obj)
            continue
        try:
            for flt in filters:
                obj = flt.apply_on_rule(obj)  # type: ignore[assignment]
            assert isinstance(obj, SigmaRule)
            result.rules.append(
                compile_rule(obj, path=str(path), mapping=mapping, placeholders=placeholders)
            )
        except PlaceholderMissing as exc:
            result.failures.append(RuleFailure(str(path), rid, obj.title, str(exc), "placeholder"))
        except (CompileError, SigmaError) as exc:
            result.failures.append(RuleFailure(str(path), rid, obj.title, str(exc)))
    return result
