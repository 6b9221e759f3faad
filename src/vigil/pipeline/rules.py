"""The rules a running service detects with: loading, hot reload and what the API shows.

:class:`RuleRegistry` holds one immutable :class:`RuleSnapshot` (compiled rules, the engine, the
compiled correlations, failures). Readers take ``registry.current`` once per batch or request;
a reload builds a complete new snapshot off to the side and swaps the reference, so a batch
never sees half of a reload.

Reload (:meth:`RuleRegistry.check`): the rule files' (path, mtime, size) and the mapping files
are compared with the last load; :meth:`RuleRegistry.poll` is the cheaper form for a periodic
reloader (folders every call, every file every few calls); on any change everything is loaded
again (a full load of SigmaHQ takes seconds, edits are rare, and correlation references and
filters span files). A rule that fails in the new load but loaded before keeps serving its
previous version, marked ``stale``, and the failure is reported; a file that was deleted takes
its rules with it. A mapping file that became invalid keeps the whole previous snapshot.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vigil.detect.correlate import CompiledCorrelation, compile_correlations, suppressed_base_rules
from vigil.detect.correlate.errors import CorrelationError
from vigil.detect.sigma.engine import SigmaEngine
from vigil.detect.sigma.loader import (
    RULE_SUFFIXES,
    CompiledRule,
    RuleFailure,
    RuleInfo,
    load_rules,
)
from vigil.detect.sigma.mapping import load_mapping
from vigil.errors import VigilError
from vigil.obs.metrics import RULES_FAILED, RULES_LOADED

log = logging.getLogger("vigil.rules")

_ID_NAMESPACE = uuid.UUID("3f5d2c1e-8a7b-4c6d-9e0f-1a2b3c4d5e6f")


def rule_key(rule_id: str | None, name: str | None, title: str, path: str) -> str:
    """The id the API and the tenant settings use: the rule's own id (lowercase), else its
    name, else a stable UUID made from its file and title."""
    if rule_id:
        return rule_id.lower()
    if name:
        return name
    return str(uuid.uuid5(_ID_NAMESPACE, f"{path}\x1f{title}"))


def info_key(info: RuleInfo) -> str:
    return rule_key(info.id, info.name, info.title, info.path)


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """What the API lists about one loaded rule or correlation."""

    rule_id: str
    kind: str  # "rule" or "correlation"
    title: str
    level: str | None
    status: str | None
    tags: tuple[str, ...]
    path: str
    logsource: Mapping[str, str]
    description: str | None
    falsepositives: tuple[str, ...]
    stale: bool = False
    """True: the file now fails to load; this is the last version that loaded."""


@dataclass(frozen=True)
class RuleSnapshot:
    version: int
    loaded_at: datetime
    rules: tuple[CompiledRule, ...]
    correlations: tuple[CompiledCorrelation, ...]
    entries: Mapping[str, RuleEntry]
    failures: tuple[RuleFailure, ...]
    engine: SigmaEngine
    #: keys (lowercase id / name) of base rules whose own matches are not output
    suppressed: frozenset[str]
    files: int = 0
    duration_s: float = 0.0
    #: id(compiled rule) -> its key, so the worker does not recompute keys per match
    keys: Mapping[int, str] = field(default_factory=dict)
    #: (id, name, title) of each correlation -> its key
    correlation_keys: Mapping[tuple[str | None, str | None, str], str] = field(default_factory=dict)

    def key_of(self, rule: CompiledRule) -> str:
        return self.keys.get(id(rule)) or info_key(rule.info)

    def correlation_key(self, rule_id: str | None, name: str | None, title: str) -> str:
        return self.correlation_keys.get((rule_id, name, title)) or rule_key(
            rule_id, name, title, ""
        )


def empty_snapshot() -> RuleSnapshot:
    return RuleSnapshot(0, datetime.now(UTC), (), (), {}, (), SigmaEngine([]), frozenset())


@dataclass(frozen=True, slots=True)
class ReloadReport:
    at: datetime
    ok: bool
    changed: bool
    error: str | None = None


def _rule_entry(info: RuleInfo, stale: bool = False) -> RuleEntry:
    return RuleEntry(
        rule_id=info_key(info),
        kind="rule",
        title=info.title,
        level=info.level,
        status=info.status,
        tags=info.tags,
        path=info.path,
        logsource=dict(info.logsource),
        description=info.description,
        falsepositives=info.falsepositives,
        stale=stale,
    )


def _correlation_entry(corr: CompiledCorrelation, path: str, stale: bool = False) -> RuleEntry:
    info = corr.info
    return RuleEntry(
        rule_id=rule_key(info.id, info.name, info.title, path),
        kind="correlation",
        title=info.title,
        level=info.level,
        status=None,
        tags=info.tags,
        path=path,
        logsource={},
        description=None,
        falsepositives=(),
        stale=stale,
    )


def _source_path(rule: Any) -> str:
    source = getattr(rule, "source", None)
    path = getattr(source, "path", None)
    return str(path) if path is not None else ""


Signature = tuple[tuple[str, int, int], ...]


def file_signature(paths: Iterable[Path], folders: list[str] | None = None) -> Signature:
    """(path, mtime_ns, size) of every rule file under ``paths`` (and of the paths that are
    files, such as mapping files); a missing path appears with -1. The folders walked are
    appended to ``folders`` when given."""
    out: list[tuple[str, int, int]] = []

    def walk(folder: str) -> None:
        if folders is not None:
            folders.append(folder)
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if entry.is_dir(follow_symlinks=True):
                        walk(entry.path)
                    elif entry.name.endswith(RULE_SUFFIXES):
                        try:
                            st = entry.stat()
                        except OSError:
                            continue
                        out.append((entry.path, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((folder, -1, -1))

    for path in paths:
        if path.is_dir():
            walk(str(path))
        else:
            try:
                st = path.stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), -1, -1))
    return tuple(sorted(out))


def stat_signature(paths: Iterable[str]) -> Signature:
    """(path, mtime_ns, size) of each of ``paths`` itself (-1 when missing)."""
    out: list[tuple[str, int, int]] = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((path, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((path, -1, -1))
    return tuple(out)


class RuleRegistry:
    """Loads rules from ``rule_paths`` with ``mapping_paths`` and keeps the current snapshot."""

    def __init__(
        self,
        rule_paths: Sequence[Path],
        *,
        mapping_paths: Sequence[Path] = (),
        placeholders: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.rule_paths = tuple(rule_paths)
        self.mapping_paths = tuple(mapping_paths)
        self.placeholders = dict(placeholders or {})
        self.current: RuleSnapshot = empty_snapshot()
        self.last_reload: ReloadReport | None = None
        self._signature: Signature | None = None
        #: what :meth:`poll` compares between full checks: the folders walked and mapping files
        self._cheap_paths: tuple[str, ...] = ()
        self._cheap: Signature | None = None
        self._polls = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ loading
    def load(self) -> RuleSnapshot:
        """Load everything now (at start; raises on an invalid mapping file)."""
        with self._lock:
            signature = self._scan()
            snapshot = self._build(previous=None)
            self._install(snapshot, signature, changed=True)
            return snapshot

    def _scan(self) -> Signature:
        """Every file's signature; remembers the folders and mapping files for :meth:`poll`."""
        folders: list[str] = []
        signature = file_signature([*self.rule_paths, *self.mapping_paths], folders)
        files = [str(p) for p in (*self.rule_paths, *self.mapping_paths) if not p.is_dir()]
        self._cheap_paths = (*folders, *files)
        self._cheap = stat_signature(self._cheap_paths)
        return signature

    def poll(self, *, full_every: int = 5) -> ReloadReport | None:
        """The periodic form of :meth:`check`, for a reloader calling every couple of seconds.

        Stat'ing each of SigmaHQ's ~3,000 files costs ~20 ms of CPU, in every process that
        holds rules. So each call stats only the folders (a file added, deleted or renamed into
        place, which is how editors and git write files, changes its folder's mtime) and the
        mapping files, ~1 ms; every ``full_every``-th call is a full :meth:`check`, which also
        sees a rule file rewritten in place.
        """
        self._polls += 1
        if self._cheap is None or self._polls % full_every == 0:
            return self.check()
        if stat_signature(self._cheap_paths) == self._cheap:
            return None
        return self.check()

    def check(self) -> ReloadReport | None:
        """Reload if any rule or mapping file changed; the report, or None if nothing did."""
        signature = self._scan()
        if signature == self._signature:
            return None
        with self._lock:
            try:
                snapshot = self._build(previous=self.current)
            except VigilError as exc:
                # An invalid mapping makes every rule suspect: keep serving the last good set.
                message = str(exc).replace("\n", "; ")
                log.error(
                    "rule reload failed; keeping the previous rules", extra={"error": message}
                )
                self._signature = signature
                self.last_reload = ReloadReport(datetime.now(UTC), False, False, message)
                return self.last_reload
            self._install(snapshot, signature, changed=True)
            return self.last_reload

    def _install(self, snapshot: RuleSnapshot, signature: Signature, changed: bool) -> None:
        self.current = snapshot
        self._signature = signature
        self.last_reload = ReloadReport(snapshot.loaded_at, True, changed)
        RULES_LOADED.set(len(snapshot.entries))
        RULES_FAILED.set(len(snapshot.failures))
        for failure in snapshot.failures:
            log.warning(
                "rule failed to load",
                extra={
                    "path": failure.path,
                    "rule_id": failure.rule_id,
                    "reason": failure.reason,
                    "kind": failure.kind,
                },
            )
        log.info(
            "rules loaded",
            extra={
                "version": snapshot.version,
                "rules": len(snapshot.entries),
                "failed": len(snapshot.failures),
                "duration_s": round(snapshot.duration_s, 3),
            },
        )

    def _build(self, previous: RuleSnapshot | None) -> RuleSnapshot:
        import time

        started = time.perf_counter()
        mapping = load_mapping(list(self.mapping_paths))
        result = load_rules(self.rule_paths, mapping=mapping, placeholders=self.placeholders)
        failures = list(result.failures)
        rules = list(result.rules)
        correlations, corr_paths = self._compile_correlations(result.correlations, failures)
        stale: set[str] = set()
        if previous is not None:
            self._keep_previous(previous, failures, rules, correlations, corr_paths, stale)
        entries: dict[str, RuleEntry] = {}
        keys: dict[int, str] = {}
        for rule in rules:
            entry = _rule_entry(rule.info, stale=info_key(rule.info) in stale)
            keys[id(rule)] = entry.rule_id
            entries.setdefault(entry.rule_id, entry)
        correlation_keys: dict[tuple[str | None, str | None, str], str] = {}
        for corr in correlations:
            path = corr_paths.get(id(corr), "")
            key = rule_key(corr.info.id, corr.info.name, corr.info.title, path)
            correlation_keys[(corr.info.id, corr.info.name, corr.info.title)] = key
            entries.setdefault(key, _correlation_entry(corr, path, stale=key in stale))
        return RuleSnapshot(
            version=(previous.version if previous else self.current.version) + 1,
            loaded_at=datetime.now(UTC),
            rules=tuple(rules),
            correlations=tuple(correlations),
            entries=entries,
            failures=tuple(failures),
            engine=SigmaEngine(rules),
            suppressed=frozenset(suppressed_base_rules(correlations)),
            files=result.files,
            duration_s=time.perf_counter() - started,
            keys=keys,
            correlation_keys=correlation_keys,
        )

    @staticmethod
    def _compile_correlations(
        parsed: Sequence[Any], failures: list[RuleFailure]
    ) -> tuple[list[CompiledCorrelation], dict[int, str]]:
        """Compile all correlations; if the set fails, compile one by one and report the bad."""
        paths_by_key = {
            rule_key(str(c.id) if c.id else None, c.name, c.title, _source_path(c)): _source_path(c)
            for c in parsed
        }
        try:
            compiled = compile_correlations(list(parsed))
        except CorrelationError:
            compiled = []
            seen: set[str] = set()
            for corr in parsed:
                try:
                    for item in compile_correlations([corr]):
                        if item.label not in seen:
                            seen.add(item.label)
                            compiled.append(item)
                except CorrelationError as exc:
                    failures.append(
                        RuleFailure(
                            _source_path(corr),
                            str(corr.id) if corr.id else None,
                            corr.title,
                            str(exc),
                        )
                    )
        paths = {
            id(c): paths_by_key.get(rule_key(c.info.id, c.info.name, c.info.title, ""), "")
            for c in compiled
        }
        return compiled, paths

    @staticmethod
    def _keep_previous(
        previous: RuleSnapshot,
        failures: Sequence[RuleFailure],
        rules: list[CompiledRule],
        correlations: list[CompiledCorrelation],
        corr_paths: dict[int, str],
        stale: set[str],
    ) -> None:
        """Failed rules that loaded before keep their previous version (marked stale)."""
        failed_ids = {f.rule_id.lower() for f in failures if f.rule_id}
        failed_files = {f.path for f in failures if not f.rule_id}
        present = {info_key(r.info) for r in rules}
        present_corr = {
            rule_key(c.info.id, c.info.name, c.info.title, corr_paths.get(id(c), ""))
            for c in correlations
        }
        for rule in previous.rules:
            key = info_key(rule.info)
            if key in present:
                continue
            rid = (rule.info.id or "").lower()
            if (rid and rid in failed_ids) or rule.info.path in failed_files:
                rules.append(rule)
                stale.add(key)
        previous_corr_entries = {
            e.rule_id: e for e in previous.entries.values() if e.kind == "correlation"
        }
        kept: list[tuple[CompiledCorrelation, str]] = []
        for corr in previous.correlations:
            info = corr.info
            entry = next(
                (
                    e
                    for e in previous_corr_entries.values()
                    if e.rule_id == rule_key(info.id, info.name, info.title, e.path)
                ),
                None,
            )
            if entry is None or entry.rule_id in present_corr:
                continue
            rid = (info.id or "").lower()
            if (rid and rid in failed_ids) or entry.path in failed_files:
                kept.append((corr, entry.rule_id))
                corr_paths[id(corr)] = entry.path
        if kept:
            from vigil.detect.correlate import CorrelationEngine

            try:
                CorrelationEngine([*correlations, *(c for c, _ in kept)])
            except CorrelationError:
                # A kept correlation no longer fits the new set: serve the new set only.
                return
            correlations.extend(c for c, _ in kept)
            stale.update(key for _, key in kept)

    # ------------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        snap = self.current
        report = self.last_reload
        return {
            "version": snap.version,
            "loaded": len(snap.entries),
            "rules": len(snap.rules),
            "correlations": len(snap.correlations),
            "files": snap.files,
            "stale": sorted(e.rule_id for e in snap.entries.values() if e.stale),
            "failed": [f.to_dict() for f in snap.failures],
            "loaded_at": snap.loaded_at.isoformat(),
            "load_duration_s": round(snap.duration_s, 3),
            "last_reload": None
            if report is None
            else {
                "at": report.at.isoformat(),
                "ok": report.ok,
                "error": report.error,
            },
            "rule_paths": [str(p) for p in self.rule_paths],
            "mapping_paths": [str(p) for p in self.mapping_paths],
        }
