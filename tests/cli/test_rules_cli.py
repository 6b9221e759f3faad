"""`vigil rules check` and `vigil rules test`, run as the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.sigma_cli_helpers import (
    BENIGN,
    CERTUTIL,
    RULE_HIGH,
    RULE_LOW,
    vigil,
    write_jsonl,
    write_rules,
)

BROKEN = """
title: Broken condition
id: 7e6d5c4b-0000-4000-8000-000000000009
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection:
    Image: x
  condition: selection and missing_one
"""

PLACEHOLDER = """
title: Needs admins
id: 7e6d5c4b-0000-4000-8000-00000000000a
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection:
    User|expand: '%Administrators%'
  condition: selection
"""


def test_check_json_schema(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULE_HIGH, RULE_LOW, BROKEN, PLACEHOLDER)
    (rules / "bad_yaml.yml").write_text("title: [oops\n", encoding="utf-8")
    proc = vigil("rules", "check", rules, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert {"loaded", "failed"} <= set(payload)
    assert payload["loaded"] == 2
    assert isinstance(payload["failed"], list)
    assert len(payload["failed"]) == 3
    for failure in payload["failed"]:
        assert set(failure) == {"path", "rule_id", "title", "reason", "kind"}
        assert isinstance(failure["path"], str) and Path(failure["path"]).is_file()
        assert isinstance(failure["reason"], str) and failure["reason"]
        assert failure["kind"] in ("error", "placeholder")
    by_path = {Path(f["path"]).name: f for f in payload["failed"]}
    assert by_path["bad_yaml.yml"]["rule_id"] is None
    assert "cannot read rule file" in by_path["bad_yaml.yml"]["reason"]
    broken = by_path["rule_2.yml"]
    assert broken["rule_id"] == "7e6d5c4b-0000-4000-8000-000000000009"
    assert "missing_one" in broken["reason"]
    assert broken["kind"] == "error"
    needs = by_path["rule_3.yml"]
    assert needs["kind"] == "placeholder"
    assert "Administrators" in needs["reason"]


def test_check_text(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULE_HIGH, BROKEN)
    proc = vigil("rules", "check", rules, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 rules loaded" in proc.stdout
    assert "1 failed" in proc.stdout
    assert "7e6d5c4b-0000-4000-8000-000000000009" in proc.stdout
    assert "missing_one" in proc.stdout


def test_check_missing_path(tmp_path: Path) -> None:
    proc = vigil("rules", "check", tmp_path / "nope", cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0
    assert "nope" in proc.stderr and "no such file" in proc.stderr


def test_rules_test_match_and_no_match(tmp_path: Path) -> None:
    rule = write_rules(tmp_path / "rules", RULE_HIGH) / "rule_0.yml"
    hit = write_jsonl(tmp_path / "hit.jsonl", [CERTUTIL])
    proc = vigil("rules", "test", rule, "--event", hit, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MATCH" in proc.stdout

    near = dict(CERTUTIL, CommandLine="certutil -verify x")
    miss = write_jsonl(tmp_path / "miss.jsonl", [near])
    proc = vigil("rules", "test", rule, "--event", miss, cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no match" in proc.stdout
    why = proc.stdout.split("failed because:")[1].split("\n  ✘")[0]
    # The failing selection and item are named, the passing one is not blamed.
    assert "selection cli" in why
    assert "CommandLine|contains" in why
    assert "certutil -verify x" in why
    assert "Image|endswith" not in why
    assert "(event field" not in proc.stdout  # no renaming under Sysmon's own field names


def test_rules_test_names_the_mapped_event_field(tmp_path: Path) -> None:
    rule = write_rules(tmp_path / "rules", RULE_HIGH) / "rule_0.yml"
    security = {
        "Channel": "Security",
        "EventID": 4688,
        "NewProcessName": r"C:\Windows\System32\cmd.exe",
        "CommandLine": "certutil -urlcache",
    }
    events = write_jsonl(tmp_path / "sec.jsonl", [security])
    proc = vigil("rules", "test", rule, "--event", events, cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    why = proc.stdout.split("failed because:")[1].split("\n  ✘")[0]
    assert "Image|endswith (event field NewProcessName)" in why
    assert "cmd.exe" in why
    hit = {**security, "NewProcessName": r"C:\Windows\System32\certutil.exe"}
    hit_file = write_jsonl(tmp_path / "hit.jsonl", [hit])
    proc = vigil("rules", "test", rule, "--event", hit_file, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MATCH" in proc.stdout


def test_rules_test_several_events_one_matching(tmp_path: Path) -> None:
    rule = write_rules(tmp_path / "rules", RULE_HIGH) / "rule_0.yml"
    events = write_jsonl(tmp_path / "ev.jsonl", [BENIGN, CERTUTIL])
    proc = vigil("rules", "test", rule, "--event", events, cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.count("no match") == 1
    assert "record 2: MATCH" in proc.stdout


def test_rules_test_errors(tmp_path: Path) -> None:
    broken = write_rules(tmp_path / "rules", BROKEN) / "rule_0.yml"
    events = write_jsonl(tmp_path / "ev.jsonl", [CERTUTIL])
    proc = vigil("rules", "test", broken, "--event", events, cwd=tmp_path)
    assert proc.returncode not in (0, 3)
    assert "missing_one" in proc.stderr

    good = write_rules(tmp_path / "good", RULE_HIGH) / "rule_0.yml"
    proc = vigil("rules", "test", good, "--event", tmp_path / "absent.json", cwd=tmp_path)
    assert proc.returncode not in (0, 3)
    assert proc.stderr.strip().count("\n") == 0
    assert "absent.json" in proc.stderr

    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text("{not json\n", encoding="utf-8")
    proc = vigil("rules", "test", good, "--event", corrupt, cwd=tmp_path)
    assert proc.returncode not in (0, 3)
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "corrupt.jsonl" in proc.stderr
