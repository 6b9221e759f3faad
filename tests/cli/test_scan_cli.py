"""`vigil scan`, run as the real CLI: formats, output file, level filter, workers, bad inputs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.sigma_cli_helpers import (
    BENIGN,
    CERTUTIL,
    RULE_HIGH,
    RULE_LOW,
    WHOAMI,
    proc,
    vigil,
    write_jsonl,
    write_rules,
)

HIGH_ID = "2b3c4d5e-0000-4000-8000-000000000001"
LOW_ID = "2b3c4d5e-0000-4000-8000-000000000002"


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    rules = write_rules(tmp_path / "rules", RULE_HIGH, RULE_LOW)
    events = write_jsonl(tmp_path / "events.jsonl", [CERTUTIL, BENIGN, WHOAMI])
    return rules, events


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_jsonl_fields(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    dets = jsonl(result.stdout)
    assert sorted((d["rule_id"], d["record_id"]) for d in dets) == [(HIGH_ID, 1), (LOW_ID, 3)]
    high = next(d for d in dets if d["rule_id"] == HIGH_ID)
    required = {"rule_id", "rule_title", "level", "tags", "source_file", "record_id"}
    assert required | {"timestamp", "event"} <= set(high)
    assert high["rule_title"] == "Certutil download"
    assert high["level"] == "high"
    assert high["tags"] == ["attack.command_and_control", "attack.t1105"]
    assert Path(high["source_file"]).name == "events.jsonl"
    assert high["event"]["CommandLine"] == CERTUTIL["CommandLine"]
    assert high["timestamp"].startswith("2024-01-01T10:00:00")


def test_no_match_exit_zero(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, _ = setup
    benign = write_jsonl(tmp_path / "benign.jsonl", [BENIGN])
    result = vigil("scan", benign, "--rules", rules, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_json_is_a_valid_array(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    assert sorted(d["rule_id"] for d in data) == [HIGH_ID, LOW_ID]
    benign = write_jsonl(tmp_path / "benign.jsonl", [BENIGN])
    empty = vigil("scan", benign, "--rules", rules, "--format", "json", cwd=tmp_path)
    assert json.loads(empty.stdout) == []


def test_csv_header_and_rows(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, "--format", "csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    header = result.stdout.splitlines()[0].split(",")
    for column in ("rule_id", "rule_title", "level", "tags", "source_file", "record_id"):
        assert column in header
    assert sorted(r["rule_id"] for r in rows) == [HIGH_ID, LOW_ID]
    high = next(r for r in rows if r["rule_id"] == HIGH_ID)
    assert high["tags"] == "attack.command_and_control;attack.t1105"
    assert json.loads(high["event"])["Image"] == CERTUTIL["Image"]


def test_table(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, "--format", "table", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Certutil download" in result.stdout
    assert "Whoami run" in result.stdout
    assert "events.jsonl" in result.stdout


def test_output_file(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    out = tmp_path / "out.jsonl"
    result = vigil("scan", events, "--rules", rules, "-o", out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
    assert sorted(d["rule_id"] for d in jsonl(out.read_text(encoding="utf-8"))) == [
        HIGH_ID,
        LOW_ID,
    ]
    bad = vigil("scan", events, "--rules", rules, "-o", tmp_path / "no" / "x.json", cwd=tmp_path)
    assert bad.returncode != 0
    assert bad.stderr.strip().count("\n") == 0


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("informational", {HIGH_ID, LOW_ID}),
        ("low", {HIGH_ID, LOW_ID}),
        ("medium", {HIGH_ID}),
        ("high", {HIGH_ID}),
        ("HIGH", {HIGH_ID}),
        ("critical", set()),
    ],
)
def test_min_level(
    tmp_path: Path, setup: tuple[Path, Path], level: str, expected: set[str]
) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, "--min-level", level, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {d["rule_id"] for d in jsonl(result.stdout)} == expected


def test_unknown_level(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, "--rules", rules, "--min-level", "severe", cwd=tmp_path)
    assert result.returncode != 0
    assert "severe" in result.stderr
    assert "high" in result.stderr  # names the accepted levels
    assert result.stderr.strip().count("\n") == 0
    assert result.stdout == ""


def test_workers_same_detections(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", RULE_HIGH, RULE_LOW)
    folder = tmp_path / "logs"
    folder.mkdir()
    for f in range(4):
        events = []
        for n in range(30):
            kind = (f + n) % 3
            base = (CERTUTIL, WHOAMI, BENIGN)[kind]
            events.append(proc(base["Image"], f"{base['CommandLine']} {f}-{n}", n % 60))
        write_jsonl(folder / f"log{f}.jsonl", events)

    def detections(workers: str) -> list[tuple[str, str, int]]:
        result = vigil("scan", folder, "--rules", rules, "--workers", workers, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return sorted(
            (d["rule_id"], Path(d["source_file"]).name, d["record_id"])
            for d in jsonl(result.stdout)
        )

    one = detections("1")
    assert len(one) == 80  # 4 files x 20 of 30 events match one of the rules
    assert detections("2") == one


def test_corrupt_line_is_reported_and_scan_goes_on(
    tmp_path: Path, setup: tuple[Path, Path]
) -> None:
    rules, _ = setup
    events = write_jsonl(
        tmp_path / "mixed.jsonl", [CERTUTIL, WHOAMI], extra_lines=("{not json at all",)
    )
    result = vigil("scan", events, "--rules", rules, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(d["rule_id"] for d in jsonl(result.stdout)) == [HIGH_ID, LOW_ID]
    assert "mixed.jsonl" in result.stderr
    assert "line 2" in result.stderr


def test_missing_input_path(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    rules, events = setup
    result = vigil("scan", events, tmp_path / "missing.jsonl", "--rules", rules, cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "missing.jsonl" in result.stderr
    assert result.stdout == ""


def test_missing_rules_path(tmp_path: Path, setup: tuple[Path, Path]) -> None:
    _, events = setup
    result = vigil("scan", events, "--rules", tmp_path / "norules", cwd=tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0
    assert "norules" in result.stderr
