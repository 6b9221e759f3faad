"""Readers: real SigmaHQ regression EVTX/JSON, damaged inputs, JSON shapes, path expansion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import evtx
import orjson
import pytest

from tests.events.conftest import USERDATA_JSON
from vigil.errors import VigilError
from vigil.events import (
    EventReadError,
    EventRecord,
    InputFormat,
    ReadIssue,
    detect_format,
    iter_input_files,
    normalise,
    read_events,
    read_paths,
)
from vigil.events.evtx_reader import read_evtx

CHUNK = 0x10000


def split(items: list[EventRecord | ReadIssue]) -> tuple[list[EventRecord], list[ReadIssue]]:
    records = [item for item in items if isinstance(item, EventRecord)]
    issues = [item for item in items if isinstance(item, ReadIssue)]
    return records, issues


def comparable(value: Any) -> Any:
    """The regression JSON exports trim trailing blanks and differ in letter case in one sample;
    Sigma matching is case-insensitive, so compare strings that way."""
    if isinstance(value, str):
        return value.strip().casefold()
    return value


# --- real regression data -------------------------------------------------------------------


def test_evtx_regression_sample_reads_all_records(multi_evtx: Path) -> None:
    records, issues = split(list(read_events(multi_evtx)))
    assert issues == []
    assert len(records) == 6
    first = records[0]
    assert first.fields["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert first.fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert first.fields["EventID"] == 1
    assert isinstance(first.fields["Execution_ProcessID"], int)
    assert "CommandLine" in first.fields and "Image" in first.fields
    assert first.record_id == first.fields["EventRecordID"]
    assert first.timestamp is not None and first.timestamp.tzinfo is not None
    assert first.source_file == str(multi_evtx)
    ids = [record.record_id for record in records]
    assert all(isinstance(i, int) for i in ids)
    assert ids == sorted(i for i in ids if i is not None) and len(set(ids)) == 6


def test_evtx_and_json_exports_give_the_same_fields(regression_data: Path) -> None:
    pairs = sorted(regression_data.rglob("*.evtx"))
    assert len(pairs) > 100
    compared = 0
    for evtx_path in pairs:
        json_path = evtx_path.with_suffix(".json")
        if not json_path.is_file():
            continue
        from_evtx, evtx_issues = split(list(read_events(evtx_path)))
        from_json, json_issues = split(list(read_events(json_path)))
        assert evtx_issues == json_issues == [], evtx_path
        assert len(from_evtx) == len(from_json), evtx_path
        for a, b in zip(from_evtx, from_json, strict=True):
            assert a.fields.keys() == b.fields.keys(), evtx_path
            for key in a.fields:
                if key == "TimeCreated_SystemTime":
                    continue  # one export writes 9 fractional digits; compared as timestamps
                assert comparable(a.fields[key]) == comparable(b.fields[key]), (evtx_path, key)
            assert a.timestamp == b.timestamp, evtx_path
            assert a.fields["EventRecordID"] == b.fields["EventRecordID"]
            compared += 1
    assert compared >= 200


def test_concatenated_json_export_yields_each_object_with_its_index(multi_evtx: Path) -> None:
    records, issues = split(list(read_events(multi_evtx.with_suffix(".json"))))
    assert issues == []
    assert [record.record_id for record in records] == list(range(6))


def test_user_data_sample(regression_data: Path) -> None:
    path = regression_data / USERDATA_JSON
    if not path.is_file():
        pytest.skip(f"regression sample missing: {path}")
    (record,) = split(list(read_events(path)))[0]
    assert record.fields["Channel"] == "Microsoft-Windows-WMI-Activity/Operational"
    assert "cleareventlog" in record.fields["Operation"]
    assert record.fields["ClientProcessId"] == 25920
    assert record.fields["User"] == "swachchhanda\\xodih"


def test_separate_json_attributes_rendering_gives_same_fields(multi_evtx: Path) -> None:
    plain = evtx.PyEvtxParser(str(multi_evtx)).records_json()
    separate = evtx.PyEvtxParser(str(multi_evtx), separate_json_attributes=True).records_json()
    count = 0
    for a, b in zip(plain, separate, strict=True):
        assert isinstance(a, dict) and isinstance(b, dict)
        assert "Provider_attributes" in b["data"]
        assert (
            normalise(orjson.loads(a["data"])).fields == normalise(orjson.loads(b["data"])).fields
        )
        count += 1
    assert count == 6


# --- damaged EVTX ---------------------------------------------------------------------------


def test_truncated_evtx_recovers_records_before_the_cut(multi_evtx: Path, tmp_path: Path) -> None:
    data = multi_evtx.read_bytes()
    complete = [r for r in read_events(multi_evtx) if isinstance(r, EventRecord)]
    # Cut in the middle of the 4th record: find record starts by their "**\0\0" magic.
    chunk = data[4096 : 4096 + CHUNK]
    starts = [i for i in range(512, len(chunk)) if chunk.startswith(b"**\x00\x00", i)]
    cut = 4096 + starts[3] + 40
    truncated = tmp_path / "cut.evtx"
    truncated.write_bytes(data[:cut])

    records, issues = split(list(read_events(truncated)))
    assert [r.fields for r in records] == [r.fields for r in complete[:3]]
    # The record the cut runs through is reported (not yielded as an empty template), then
    # the truncation itself.
    assert [(i.location, i.message.split(";")[0]) for i in issues] == [
        ("record 4", "record cut short by truncation"),
        ("chunk at byte 4096", f"file truncated: last chunk has {cut - 4096} of 65536 bytes"),
    ]
    assert all(issue.source_file == str(truncated) for issue in issues)


def test_evtx_cut_at_chunk_boundary_is_reported(multi_evtx: Path, tmp_path: Path) -> None:
    header_only = tmp_path / "header.evtx"
    header_only.write_bytes(multi_evtx.read_bytes()[:4096])
    records, issues = split(list(read_events(header_only)))
    assert records == []
    assert len(issues) == 1
    assert "declares 1 chunks, file holds 0" in issues[0].message


def test_corrupt_record_in_middle_is_reported_and_reading_continues(
    multi_evtx: Path, tmp_path: Path
) -> None:
    data = bytearray(multi_evtx.read_bytes())
    chunk_start = 4096
    starts = [
        i
        for i in range(chunk_start + 512, chunk_start + CHUNK)
        if data.startswith(b"**\x00\x00", i)
    ]
    target = starts[2]
    data[target + 40 : target + 200] = b"\xff" * 160
    damaged = tmp_path / "damaged.evtx"
    damaged.write_bytes(bytes(data))

    records, issues = split(list(read_events(damaged)))
    assert len(records) == 5
    assert len(issues) == 1
    assert "record" in issues[0].message.lower()
    assert issues[0].location.startswith("after EventRecordID")


def test_non_evtx_bytes_with_evtx_extension(tmp_path: Path) -> None:
    fake = tmp_path / "fake.evtx"
    fake.write_bytes(b"not an event log at all")
    records, issues = split(list(read_events(fake)))
    assert records == []
    assert issues == [ReadIssue(str(fake), "file", "not an EVTX file (missing ElfFile header)")]


def test_evtx_detected_by_content_whatever_the_name(multi_evtx: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "export.log"
    renamed.write_bytes(multi_evtx.read_bytes())
    assert detect_format(renamed) is InputFormat.EVTX
    assert len(split(list(read_events(renamed)))[0]) == 6


def test_evtx_reader_works_with_all_cores_too(multi_evtx: Path) -> None:
    one = [r.fields for r in read_evtx(multi_evtx, threads=1) if isinstance(r, EventRecord)]
    many = [r.fields for r in read_evtx(multi_evtx, threads=0) if isinstance(r, EventRecord)]
    assert one == many and len(one) == 6


# --- JSON lines -----------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_json_lines_with_broken_line_in_the_middle(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "events.jsonl",
        [
            '{"EventID": 1, "Image": "a.exe"}',
            "",
            '{"EventID": 2, "Image": ',
            '{"EventID": 3, "nested": {"k": "v"}}',
            "[1, 2]",
            '{"EventID": 4}',
        ],
    )
    records, issues = split(list(read_events(path)))
    assert [(r.record_id, r.fields.get("EventID")) for r in records] == [(1, 1), (4, 3), (6, 4)]
    assert records[1].fields["nested.k"] == "v"
    assert [(i.location, i.message.split(":")[0]) for i in issues] == [
        ("line 3", "invalid JSON"),
        ("line 5", "expected a JSON object, got list"),
    ]


def test_json_file_that_is_line_delimited_is_sniffed(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.json", ['{"a": 1}', '{"a": 2}'])
    assert [r.record_id for r in read_events(path) if isinstance(r, EventRecord)] == [1, 2]


def test_json_lines_with_broken_first_line_is_still_line_mode(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.json", ['{"a": ', '{"a": 2}', '{"a": 3}'])
    records, issues = split(list(read_events(path)))
    assert [r.record_id for r in records] == [2, 3]
    assert [i.location for i in issues] == ["line 1"]


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\r\n')
    assert [r.fields["a"] for r in read_events(path) if isinstance(r, EventRecord)] == [1, 2]


def test_utf16_is_reported_not_misread(tmp_path: Path) -> None:
    path = tmp_path / "ps.json"
    path.write_bytes('{"a": 1}'.encode("utf-16"))
    records, issues = split(list(read_events(path)))
    assert records == [] and "UTF-16" in issues[0].message


def test_empty_file_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(b"\n\n")
    assert list(read_events(path)) == []


# --- JSON documents -------------------------------------------------------------------------


def test_json_array_uses_zero_based_index(tmp_path: Path) -> None:
    path = tmp_path / "array.json"
    events = [{"eventName": "A", "t": {"x": [1, 2]}}, {"eventName": "B"}, {"eventName": "C"}]
    path.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    records, issues = split(list(read_events(path)))
    assert issues == []
    assert [(r.record_id, r.fields["eventName"]) for r in records] == [(0, "A"), (1, "B"), (2, "C")]
    assert records[0].fields["t.x"] == [1, 2]


def test_minified_array_and_single_object(tmp_path: Path) -> None:
    array = tmp_path / "min.json"
    array.write_bytes(b'[{"a":"x,]}"},{"a":"y\\"{"} , {"a":3}]')
    assert [r.fields["a"] for r in read_events(array) if isinstance(r, EventRecord)] == [
        "x,]}",
        'y"{',
        3,
    ]
    single = tmp_path / "one.json"
    single.write_bytes(orjson.dumps({"a": {"b": 1}}, option=orjson.OPT_INDENT_2))
    (record,) = read_events(single)
    assert isinstance(record, EventRecord)
    assert (record.record_id, record.fields) == (0, {"a.b": 1})


def test_array_with_bad_element_reports_it_and_continues(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(b'[\n  {"a": 1},\n  {"a": tru},\n  7,\n  {"a": 4}\n]\n')
    records, issues = split(list(read_events(path)))
    assert [(r.record_id, r.fields["a"]) for r in records] == [(0, 1), (3, 4)]
    assert [i.location for i in issues] == ["index 1 (line 3)", "index 2 (line 4)"]
    assert issues[1].message == "expected a JSON object, got int"


def test_truncated_array_reports_the_cut(tmp_path: Path) -> None:
    path = tmp_path / "cut.json"
    path.write_bytes(b'[{"a": 1}, {"a": 2}, {"a": ')
    records, issues = split(list(read_events(path)))
    assert [r.fields["a"] for r in records] == [1, 2]
    assert [i.location for i in issues] == ["index 2 (line 1)", "line 1"]
    assert "unterminated JSON array" in issues[1].message


def test_concatenated_pretty_objects_with_noise_between(tmp_path: Path) -> None:
    body = orjson.dumps({"x": {"y": "}\n{"}}, option=orjson.OPT_INDENT_2)
    path = tmp_path / "dump.json"
    path.write_bytes(b"Record 1\n" + body + b"\nhello\n" + body + b"\n" + body[:-3])
    records, issues = split(list(read_events(path)))
    assert [(r.record_id, r.fields["x.y"]) for r in records] == [(0, "}\n{"), (1, "}\n{")]
    assert [i.location for i in issues] == ["line 7", "index 2 (line 13)"]
    assert "hello" in issues[0].message
    assert issues[1].message.startswith("invalid JSON")


def test_large_pretty_document_streams_across_blocks(tmp_path: Path) -> None:
    # ~3 MiB so values straddle the 1 MiB read blocks, both as an array and concatenated.
    big = "v" * 1000 + '\\"{['
    events = [{"n": i, "payload": {"s": big, "list": [{"k": i}]}} for i in range(2500)]
    array = tmp_path / "array.json"
    array.write_bytes(orjson.dumps(events, option=orjson.OPT_INDENT_2))
    concatenated = tmp_path / "concat.json"
    concatenated.write_bytes(
        b"\n".join(orjson.dumps(e, option=orjson.OPT_INDENT_2) for e in events)
    )
    for path in (array, concatenated):
        records, issues = split(list(read_events(path)))
        assert issues == [], path
        assert [r.fields["n"] for r in records] == list(range(2500))
        assert [r.record_id for r in records] == list(range(2500))
        assert records[-1].fields["payload.s"] == big
        assert records[7].fields["payload.list.k"] == [7]


def test_logsource_hint_through_reader(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "hint.jsonl",
        ['{"logsource": {"product": "linux", "service": "auditd"}, "type": "EXECVE"}'],
    )
    (record,) = read_events(path)
    assert isinstance(record, EventRecord)
    assert record.logsource == {"product": "linux", "service": "auditd"}
    assert record.fields == {"type": "EXECVE"}


# --- errors and path expansion --------------------------------------------------------------


def test_missing_file_raises_eagerly(tmp_path: Path) -> None:
    with pytest.raises(EventReadError) as info:
        read_events(tmp_path / "nope.jsonl")
    assert isinstance(info.value, VigilError)
    assert info.value.path == str(tmp_path / "nope.jsonl")
    with pytest.raises(EventReadError, match="directory"):
        read_events(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_unreadable_file_raises(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "secret.jsonl", ['{"a": 1}'])
    path.chmod(0)
    with pytest.raises(EventReadError):
        read_events(path)


def test_iter_input_files_is_recursive_filtered_and_sorted(tmp_path: Path) -> None:
    for name in ["b/z.JSON", "b/a.evtx", "a.jsonl", "c/d/e.ndjson", "x.log", "notes.txt", "y.yml"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}\n")
    explicit = tmp_path / "notes.txt"
    found = list(iter_input_files([tmp_path, explicit]))
    relative = [p.relative_to(tmp_path).as_posix() for p in found]
    assert relative == ["a.jsonl", "b/a.evtx", "b/z.JSON", "c/d/e.ndjson", "x.log", "notes.txt"]
    with pytest.raises(EventReadError):
        list(iter_input_files([tmp_path / "missing"]))


def test_read_paths_chains_files_and_reports_per_file(tmp_path: Path) -> None:
    write_lines(tmp_path / "a.jsonl", ['{"n": 1}', "oops"])
    write_lines(tmp_path / "b.jsonl", ['{"n": 2}'])
    records, issues = split(list(read_paths([tmp_path])))
    assert [(Path(r.source_file).name, r.fields["n"]) for r in records] == [
        ("a.jsonl", 1),
        ("b.jsonl", 2),
    ]
    assert [(Path(i.source_file).name, i.location) for i in issues] == [("a.jsonl", "line 2")]


def test_read_issue_is_frozen_and_printable() -> None:
    issue = ReadIssue("f.jsonl", "line 2", "invalid JSON")
    assert str(issue) == "f.jsonl: line 2: invalid JSON"
    with pytest.raises(AttributeError):
        issue.message = "x"  # type: ignore[misc]


def test_events_package_imports_no_web_db_or_queue_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, vigil.events;"
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'redis', 'starlette') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
