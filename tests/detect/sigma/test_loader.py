"""Loader: every document that does not become a rule is a failure with file, rule id and reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.detect.sigma.conftest import RuleFactory, default_mapping, rule_yaml
from vigil.detect.sigma.loader import load_rules

SHARED = Path(__file__).resolve().parents[3].parent / "shared"
SIGMA = SHARED / "sigma"

GOOD = "sel:\n  A: x\ncondition: sel"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("title: No detection\nid: {rid}\nlogsource:\n  product: x\n", "detection"),
        (
            "title: No logsource\nid: {rid}\ndetection:\n  sel:\n    A: x\n  condition: sel\n",
            "log source",
        ),
        (rule_yaml("sel:\n  A: x", rule_id="{rid}"), "condition"),
        (rule_yaml("sel:\n  A|bogus: x\ncondition: sel", rule_id="{rid}"), "bogus"),
        (rule_yaml("sel:\n  A: x\ncondition: sel and other", rule_id="{rid}"), "other"),
        (rule_yaml("sel:\n  A|re: '[a-'\ncondition: sel", rule_id="{rid}"), "[a-"),
        (rule_yaml(GOOD, rule_id="{rid}").replace("level: medium", "level: severe"), "level"),
    ],
)
def test_failures_have_path_rule_id_and_reason(rules: RuleFactory, text: str, needle: str) -> None:
    rid = "9b7c1a2e-4d3f-4e5a-8b6c-7d8e9f0a1b2c"
    path = rules.write(text.replace("{rid}", rid), "broken.yml")
    result = load_rules([path], mapping=default_mapping())
    assert result.rules == []
    [failure] = result.failures
    assert failure.path == str(path)
    assert failure.rule_id == rid
    assert failure.kind == "error"
    assert needle.lower() in failure.reason.lower(), failure.reason
    assert "\n" not in failure.reason
    assert failure.to_dict()["rule_id"] == rid


def test_broken_yaml_file(rules: RuleFactory) -> None:
    path = rules.write("title: x\ndetection: [unclosed\n  - a: b\n", "bad.yml")
    good = rules.write(rule_yaml(GOOD), "good.yml")
    result = load_rules([path, good], mapping=default_mapping())
    assert len(result.rules) == 1
    [failure] = result.failures
    assert failure.path == str(path)
    assert failure.rule_id is None
    assert "cannot read rule file" in failure.reason
    assert "line" in failure.reason  # PyYAML's position


def test_not_utf8_file(rules: RuleFactory, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yml"
    path.write_bytes(rule_yaml(GOOD).replace("Unit test rule", "R\xe9gle").encode("latin-1"))
    result = load_rules([path], mapping=default_mapping())
    [failure] = result.failures
    assert failure.path == str(path)
    assert "utf-8" in failure.reason.lower()


def test_multi_document_file(rules: RuleFactory) -> None:
    ids = [f"1c2d3e4f-0000-4000-8000-00000000000{i}" for i in range(3)]
    text = "\n---\n".join(
        [
            rule_yaml(GOOD, rule_id=ids[0], title="First"),
            rule_yaml("sel:\n  A: x\ncondition: sel and nope", rule_id=ids[1], title="Broken"),
            rule_yaml("sel:\n  B: y\ncondition: sel", rule_id=ids[2], title="Third"),
        ]
    )
    path = rules.write(text, "multi.yml")
    result = load_rules([path], mapping=default_mapping())
    assert [r.info.title for r in result.rules] == ["First", "Third"]
    assert [r.info.path for r in result.rules] == [str(path), str(path)]
    [failure] = result.failures
    assert (failure.path, failure.rule_id, failure.title) == (str(path), ids[1], "Broken")
    assert "nope" in failure.reason
    assert result.files == 1


def test_folders_are_searched_recursively_for_yml_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.yml").write_text(rule_yaml(GOOD, title="One"), encoding="utf-8")
    (tmp_path / "a" / "b" / "two.yaml").write_text(rule_yaml(GOOD, title="Two"), encoding="utf-8")
    (tmp_path / "a" / "b" / "notes.txt").write_text("not: a rule", encoding="utf-8")
    result = load_rules([tmp_path], mapping=default_mapping())
    assert sorted(r.info.title for r in result.rules) == ["One", "Two"]
    assert result.files == 2
    assert not result.failures


def test_rule_info(rules: RuleFactory) -> None:
    text = rule_yaml(GOOD, title="Info", level="high") + "tags:\n  - attack.t1059\n"
    result = rules.load(text)
    [rule] = result.rules
    assert rule.info.title == "Info"
    assert rule.info.level == "high"
    assert rule.info.status == "test"
    assert rule.info.tags == ("attack.t1059",)
    assert rule.info.logsource == {"product": "vigiltest"}


@pytest.mark.slow
@pytest.mark.skipif(
    not (SIGMA / "rules").is_dir(), reason=f"SigmaHQ rules not found at {SIGMA} (../shared/sigma)"
)
def test_sigmahq_rule_set_loads_with_only_placeholder_failures() -> None:
    folders = [
        SIGMA / name
        for name in ("rules", "rules-emerging-threats", "rules-threat-hunting")
        if (SIGMA / name).is_dir()
    ]
    result = load_rules(folders, mapping=default_mapping())
    assert len(result.rules) > 2000
    kinds = Counter(f.kind for f in result.failures)
    errors = [f for f in result.failures if f.kind != "placeholder"]
    assert errors == [], f"{len(errors)} rules failed: {errors[:5]}"
    for failure in result.failures:
        assert failure.rule_id, failure
        assert failure.reason.startswith("placeholder %"), failure
        assert Path(failure.path).is_file()
    assert set(kinds) <= {"placeholder"}
