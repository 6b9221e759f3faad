"""RuleRegistry.poll: the reloader's cheap periodic check (folders and mapping files every call,
every rule file every ``full_every``-th call)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tests.pipeline.conftest import ENCODED_PS_RULE, EXAMPLE_RULES
from vigil.pipeline.rules import RuleRegistry

PS_FILE = "proc_creation_encoded_powershell.yml"
NEW_RULE = (
    "title: New\nid: 11111111-2222-3333-4444-555555555555\nlogsource:\n  product: linux\n"
    "detection:\n  sel:\n    msg: x\n  condition: sel\nlevel: low\n"
)


def _registry(tmp_path: Path, mapping: Path | None = None) -> tuple[RuleRegistry, Path]:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLE_RULES, rules)
    (rules / "sub").mkdir()
    registry = RuleRegistry([rules], mapping_paths=[mapping] if mapping else [])
    registry.load()
    return registry, rules


def _edit_in_place(path: Path, old: str, new: str) -> None:
    """Rewrite ``path`` in place and put its folder's mtime back: only the file's own stat
    shows the change."""
    folder = os.stat(path.parent)
    path.write_text(path.read_text().replace(old, new))
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_nothing_changed_means_no_reload(tmp_path: Path) -> None:
    registry, _ = _registry(tmp_path)
    assert [registry.poll(full_every=3) for _ in range(7)] == [None] * 7
    assert registry.current.version == 1


def test_a_file_added_to_a_subfolder_is_seen_by_the_next_poll(tmp_path: Path) -> None:
    registry, rules = _registry(tmp_path)
    (rules / "sub" / "new.yml").write_text(NEW_RULE)
    report = registry.poll(full_every=1000)
    assert report is not None and report.ok
    assert "11111111-2222-3333-4444-555555555555" in registry.current.entries


def test_a_file_renamed_into_place_is_seen_by_the_next_poll(tmp_path: Path) -> None:
    registry, rules = _registry(tmp_path)
    target = rules / PS_FILE
    staged = tmp_path / "staged.yml"
    staged.write_text(target.read_text().replace("level: high", "level: critical"))
    os.replace(staged, target)  # how editors save
    assert registry.poll(full_every=1000) is not None
    assert registry.current.entries[ENCODED_PS_RULE].level == "critical"


def test_an_in_place_edit_waits_for_the_full_check(tmp_path: Path) -> None:
    registry, rules = _registry(tmp_path)
    _edit_in_place(rules / PS_FILE, "level: high", "level: critical")
    assert registry.poll(full_every=3) is None
    assert registry.poll(full_every=3) is None
    report = registry.poll(full_every=3)  # the third call stats every file
    assert report is not None and report.ok
    assert registry.current.entries[ENCODED_PS_RULE].level == "critical"
    # check() is always the full comparison
    _edit_in_place(rules / PS_FILE, "level: critical", "level: low")
    assert registry.check() is not None
    assert registry.current.entries[ENCODED_PS_RULE].level == "low"


def test_a_mapping_file_edited_in_place_is_seen_by_the_next_poll(tmp_path: Path) -> None:
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("version: 1\nlogsources: {}\n")
    registry, _ = _registry(tmp_path, mapping)
    _edit_in_place(mapping, "version: 1\n", "logsources: {broken: [1, 2]}\nnot: valid: [\n")
    report = registry.poll(full_every=1000)
    assert report is not None and not report.ok
