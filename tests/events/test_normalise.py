"""normalise(): Windows (evtx-rendered) events to Sigma names, generic JSON to dotted keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vigil.events import flatten_json, normalise

SYSTEM: dict[str, Any] = {
    "Provider": {"#attributes": {"Name": "Service Control Manager", "Guid": "{555908d1}"}},
    "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
    "Version": 0,
    "Level": 4,
    "Task": 0,
    "Opcode": 0,
    "Keywords": "0x8080000000000000",
    "TimeCreated": {"#attributes": {"SystemTime": "2024-03-01T10:20:30.1234567Z"}},
    "EventRecordID": 42,
    "Correlation": {"#attributes": {"ActivityID": "ABC"}},
    "Execution": {"#attributes": {"ProcessID": 700, "ThreadID": 800}},
    "Channel": "System",
    "Computer": "host1",
    "Security": {"#attributes": {"UserID": "S-1-5-18"}},
}


def windows(**sections: Any) -> dict[str, Any]:
    return {"Event": {"#attributes": {"xmlns": "x"}, "System": SYSTEM, **sections}}


def test_system_fields_use_sigma_names() -> None:
    record = normalise(windows(EventData={"ServiceName": "evil", "ImagePath": "c:\\x.exe"}))
    f = record.fields
    assert f["EventID"] == 7045
    assert f["EventID_Qualifiers"] == 16384
    assert f["Provider_Name"] == "Service Control Manager"
    assert f["Provider_Guid"] == "{555908d1}"
    assert f["Channel"] == "System"
    assert f["Computer"] == "host1"
    assert f["EventRecordID"] == 42
    assert (f["Level"], f["Task"], f["Opcode"], f["Version"]) == (4, 0, 0, 0)
    assert f["Keywords"] == "0x8080000000000000"
    assert f["Security_UserID"] == "S-1-5-18"
    assert (f["Execution_ProcessID"], f["Execution_ThreadID"]) == (700, 800)
    assert f["Correlation_ActivityID"] == "ABC"
    assert f["TimeCreated_SystemTime"] == "2024-03-01T10:20:30.1234567Z"
    assert f["ServiceName"] == "evil"
    assert f["ImagePath"] == "c:\\x.exe"
    assert "xmlns" not in f and "Event" not in f
    assert record.timestamp == datetime(2024, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)


def test_string_event_id_becomes_int() -> None:
    event = {"Event": {"System": {"EventID": "4688", "Channel": "Security"}}}
    assert normalise(event).fields["EventID"] == 4688


def test_event_without_wrapper_is_still_windows() -> None:
    record = normalise({"System": SYSTEM, "EventData": {"param1": "a"}})
    assert record.fields["EventID"] == 7045
    assert record.fields["param1"] == "a"
    assert not any(key.startswith("System.") for key in record.fields)


def test_separate_json_attributes_form() -> None:
    system = {
        "Provider": None,
        "Provider_attributes": {"Name": "Microsoft-Windows-Sysmon"},
        "EventID": 1,
        "TimeCreated": None,
        "TimeCreated_attributes": {"SystemTime": "2024-01-01T00:00:00Z"},
    }
    record = normalise({"Event": {"System": system, "EventData": None}})
    assert record.fields == {
        "Provider_Name": "Microsoft-Windows-Sysmon",
        "EventID": 1,
        "TimeCreated_SystemTime": "2024-01-01T00:00:00Z",
    }
    assert record.timestamp == datetime(2024, 1, 1, tzinfo=UTC)


def test_unnamed_data_single_and_multiple() -> None:
    one = normalise(windows(EventData={"Data": {"#text": "only"}, "Binary": "00FF"}))
    assert one.fields["Data"] == "only"
    assert one.fields["Binary"] == "00FF"
    many = normalise(windows(EventData={"Data": {"#text": ["a", "b", 3]}}))
    assert many.fields["Data"] == ["a", "b", 3]
    bare = normalise(windows(EventData={"Data": ["x", "y"]}))
    assert bare.fields["Data"] == ["x", "y"]


def test_data_items_with_name_attribute_keep_their_names() -> None:
    data = [
        {"#attributes": {"Name": "param1"}, "#text": "Windows Update"},
        {"#attributes": {"Name": "param2"}, "#text": "stopped"},
        {"#text": "loose"},
    ]
    fields = normalise(windows(EventData={"Data": data})).fields
    assert fields["param1"] == "Windows Update"
    assert fields["param2"] == "stopped"
    assert fields["Data"] == "loose"


def test_event_data_attributes_and_nulls() -> None:
    fields = normalise(
        windows(EventData={"#attributes": {"Name": "TaskDisabled"}, "TaskName": "\\x", "U": None})
    ).fields
    assert fields["EventData_Name"] == "TaskDisabled"
    assert fields["TaskName"] == "\\x"
    assert fields["U"] is None


def test_user_data_flattens_to_leaf_names() -> None:
    user_data = {
        "LogFileCleared": {
            "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
            "SubjectUserSid": "S-1-5-21",
            "SubjectUserName": "admin",
            "Channel": "Security",
            "Detail": {"#attributes": {"Kind": "full"}, "#text": "cleared"},
            "Privilege": [{"#attributes": {"Name": "A"}}, {"#attributes": {"Name": "B"}}],
        }
    }
    fields = normalise(windows(UserData=user_data)).fields
    assert fields["SubjectUserName"] == "admin"
    assert fields["SubjectUserSid"] == "S-1-5-21"
    assert fields["Detail"] == "cleared"
    assert fields["Detail_Kind"] == "full"
    assert fields["Privilege_Name"] == ["A", "B"]
    assert not any("xmlns" in key for key in fields)
    # UserData is the event payload: it wins over the System element of the same name.
    assert fields["Channel"] == "Security"


def test_other_sections_never_overwrite() -> None:
    rendering = {"Message": "A service was installed", "Level": "Information"}
    fields = normalise(windows(RenderingInfo=rendering)).fields
    assert fields["Message"] == "A service was installed"
    assert fields["Level"] == 4


def test_extra_top_level_keys_beside_event_are_kept_without_overwriting() -> None:
    obj = windows(EventData={"Image": "a.exe"})
    obj["agent"] = {"name": "collector", "Image": "ignored"}
    obj["Image"] = "not the event's"
    fields = normalise(obj).fields
    assert fields["agent.name"] == "collector"
    assert fields["Image"] == "a.exe"


def test_flat_json_keeps_keys_and_types() -> None:
    obj = {"EventID": 1, "Image": "C:\\a.exe", "ok": True, "ratio": 0.5, "none": None}
    record = normalise(obj, source_file="f.jsonl", record_id=3)
    assert record.fields == obj
    assert record.fields is not obj
    assert (record.source_file, record.record_id, record.timestamp) == ("f.jsonl", 3, None)


def test_nested_json_flattens_to_dotted_keys() -> None:
    obj = {
        "eventName": "ConsoleLogin",
        "userIdentity": {"type": "Root", "sessionContext": {"sessionIssuer": {"type": "Role"}}},
        "tags": ["a", "b"],
        "empty": {},
        "none": [],
    }
    fields = flatten_json(obj)
    assert fields == {
        "eventName": "ConsoleLogin",
        "userIdentity.type": "Root",
        "userIdentity.sessionContext.sessionIssuer.type": "Role",
        "tags": ["a", "b"],
        "none": [],
    }


def test_lists_of_objects_are_columnised() -> None:
    obj = {
        "targetResources": [
            {"type": "User", "modified": [{"name": "a"}]},
            {"type": "Group", "id": 7, "modified": [{"name": "b"}, {"name": "c"}]},
            "loose",
            ["nested", {"type": "Device"}],
        ]
    }
    fields = flatten_json(obj)
    assert fields == {
        "targetResources": ["loose", "nested"],
        "targetResources.type": ["User", "Group", "Device"],
        "targetResources.id": [7],
        "targetResources.modified.name": ["a", "b", "c"],
    }


def test_logsource_hint_moves_out_of_fields() -> None:
    obj = {
        "logsource": {"product": "aws", "service": "cloudtrail", "x": 1},
        "eventName": "StopLogging",
    }
    record = normalise(obj)
    assert record.logsource == {"product": "aws", "service": "cloudtrail"}
    assert record.fields == {"eventName": "StopLogging"}
    assert "logsource" in obj  # the input is not mutated


def test_logsource_that_is_not_an_object_is_an_ordinary_field() -> None:
    record = normalise({"logsource": "syslog"})
    assert record.logsource is None
    assert record.fields == {"logsource": "syslog"}


def test_envelope_security_event_flattens() -> None:
    envelope = {
        "event_id": "e-1",
        "event_type": "auth.failure",
        "severity": "high",
        "timestamp": "2024-05-06T07:08:09+02:00",
        "details": {"user": "bob", "src": {"ip": "10.0.0.1"}},
    }
    record = normalise(envelope)
    assert record.fields["details.src.ip"] == "10.0.0.1"
    assert record.fields["event_type"] == "auth.failure"
    assert record.timestamp == datetime(2024, 5, 6, 5, 8, 9, tzinfo=UTC)


def test_generic_timestamp_keys_in_priority_order() -> None:
    record = normalise({"time": 1_700_000_000_000, "@timestamp": "2024-01-01T00:00:00Z"})
    assert record.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    assert normalise({"time": 1_700_000_000_000}).timestamp == datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=UTC
    )
    nested = normalise({"TimeCreated": {"SystemTime": "2024-02-02T02:02:02Z"}})
    assert nested.timestamp == datetime(2024, 2, 2, 2, 2, 2, tzinfo=UTC)


def test_unparseable_timestamp_is_none_and_falls_through() -> None:
    assert normalise({"timestamp": "yesterday"}).timestamp is None
    record = normalise({"timestamp": "garbage", "eventTime": "2024-01-01 00:00:00"})
    assert record.timestamp == datetime(2024, 1, 1, tzinfo=UTC)
    windows_bad = normalise({"Event": {"System": {"TimeCreated": {"#text": "x"}}}})
    assert windows_bad.timestamp is None


def test_spaced_event_data_names_are_also_exposed_without_spaces() -> None:
    record = normalise(
        {
            "Event": {
                "System": {
                    "EventID": 1119,
                    "Channel": "Microsoft-Windows-Windows Defender/Operational",
                },
                "EventData": {"Threat Name": "Virus:DOS/EICAR_Test_File", "ThreatID": "1"},
            }
        }
    )
    assert record.fields["ThreatName"] == "Virus:DOS/EICAR_Test_File"
    assert record.fields["Threat Name"] == "Virus:DOS/EICAR_Test_File"
    assert "ThreatID" in record.fields
