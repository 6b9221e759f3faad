"""The rule registry: load, hot reload, keeping the previous version of a rule that broke."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.pipeline.conftest import (
    ENCODED_PS_RULE,
    EXAMPLE_RULES,
    FAILED_LOGON_RULE,
    MANY_FAILED_LOGONS,
)
from vigil.pipeline.rules import RuleRegistry

PS_FILE = "proc_creation_encoded_powershell.yml"


def _copy_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    return rules


def _touch_edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_load_lists_rules_and_correlations(tmp_path: Path) -> None:
    registry = RuleRegistry([_copy_rules(tmp_path)])
    snap = registry.load()
    kinds = {key: e.kind for key, e in snap.entries.items()}
    assert kinds == {
        ENCODED_PS_RULE: "rule",
        FAILED_LOGON_RULE: "rule",
        MANY_FAILED_LOGONS: "correlation",
    }
    assert snap.failures == ()
    assert registry.check() is None  # nothing changed


def test_edit_is_picked_up(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    registry = RuleRegistry([rules])
    registry.load()
    _touch_edit(rules / PS_FILE, "level: high", "level: critical")
    report = registry.check()
    assert report is not None and report.ok
    assert registry.current.version == 2
    assert registry.current.entries[ENCODED_PS_RULE].level == "critical"


def test_broken_edit_keeps_previous_version_and_reports(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    registry = RuleRegistry([rules])
    before = registry.load()
    old_rule = next(r for r in before.rules if r.info.id == ENCODED_PS_RULE)
    _touch_edit(rules / PS_FILE, "condition: all of selection_*", "condition: all of nothing_*")
    registry.check()
    snap = registry.current
    entry = snap.entries[ENCODED_PS_RULE]
    assert entry.stale
    assert any(r is old_rule for r in snap.rules)  # the previous compiled version serves on
    [failure] = snap.failures
    assert failure.rule_id == ENCODED_PS_RULE and failure.path.endswith(PS_FILE)
    status = registry.status()
    assert status["stale"] == [ENCODED_PS_RULE] and status["failed"][0]["reason"]
    # unreadable YAML: no rule id is known, the file's previous rules serve on
    (rules / PS_FILE).write_text("title: [unclosed\n")
    registry.check()
    assert registry.current.entries[ENCODED_PS_RULE].stale
    # fixed again: fresh, no failures
    shutil.copy(EXAMPLE_RULES / PS_FILE, rules / PS_FILE)
    registry.check()
    assert not registry.current.entries[ENCODED_PS_RULE].stale
    assert registry.current.failures == ()


def test_deleted_and_added_files(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    registry = RuleRegistry([rules])
    registry.load()
    (rules / PS_FILE).unlink()
    new = rules / "sub" / "new.yml"
    new.parent.mkdir()
    new.write_text(
        "title: New\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: linux\n"
        "detection:\n  sel:\n    msg: x\n  condition: sel\nlevel: low\n"
    )
    registry.check()
    keys = set(registry.current.entries)
    assert ENCODED_PS_RULE not in keys
    assert "11111111-2222-3333-4444-555555555555" in keys


def test_invalid_mapping_keeps_the_whole_previous_set(tmp_path: Path) -> None:
    rules = _copy_rules(tmp_path)
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("version: 1\nlogsources: {}\n")
    registry = RuleRegistry([rules], mapping_paths=[mapping])
    registry.load()
    version = registry.current.version
    mapping.write_text("logsources: {broken: [1, 2]}\nnot: valid: yaml: [\n")
    report = registry.check()
    assert report is not None and not report.ok and report.error
    assert registry.current.version == version
    assert ENCODED_PS_RULE in registry.current.entries
