"""normalise() takes shortcuts for the common evtx shapes; these events check that the other
shapes around them still come out as the general code makes them (names, values and order)."""

from __future__ import annotations

from typing import Any

from vigil.events import normalise


def fields_of(event: dict[str, Any]) -> list[tuple[str, Any]]:
    return list(normalise(event).fields.items())


def test_flat_event_data_keeps_system_then_data_order() -> None:
    event = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "P", "Guid": "G"}},
                "EventID": 1,
                "Channel": "C",
            },
            "EventData": {"Image": "a.exe", "EventID": 2, "Pid": None, "L": [1, 2]},
        }
    }
    assert fields_of(event) == [
        ("Provider_Name", "P"),
        ("Provider_Guid", "G"),
        ("EventID", 2),  # EventData overwrites System, in System's position
        ("Channel", "C"),
        ("Image", "a.exe"),
        ("Pid", None),
        ("L", [1, 2]),
    ]


def test_event_data_with_a_nested_value_is_flattened() -> None:
    event = {
        "Event": {
            "System": {"EventID": 1},
            "EventData": {"Image": "a.exe", "Inner": {"#text": "t", "#attributes": {"k": 1}}},
        }
    }
    assert fields_of(event) == [("EventID", 1), ("Image", "a.exe"), ("Inner", "t"), ("Inner_k", 1)]


def test_event_data_with_unnamed_data_among_named_values() -> None:
    event = {"Event": {"System": {"EventID": 1}, "EventData": {"Image": "a", "Data": ["x", "y"]}}}
    assert fields_of(event) == [("EventID", 1), ("Image", "a"), ("Data", ["x", "y"])]


def test_system_elements_of_one_key_other_than_attributes() -> None:
    event = {
        "Event": {
            "System": {
                "EventID": {"#text": "4688"},
                "Level": {"Sub": 3},
                "Provider_attributes": {"Name": "P"},
                "Provider": None,
                "Execution": {"#attributes": None},
            }
        }
    }
    assert fields_of(event) == [
        ("EventID", 4688),
        ("Level_Sub", 3),
        ("Provider_Name", "P"),
    ]


def test_spaced_names_only_when_there_are_spaces() -> None:
    plain = {"Event": {"System": {"EventID": 1}, "EventData": {"A B": 1, "C": 2}}}
    assert fields_of(plain) == [("EventID", 1), ("A B", 1), ("C", 2), ("AB", 1)]
    none = {"Event": {"System": {"EventID": 1}, "EventData": {"AB": 1}}}
    assert fields_of(none) == [("EventID", 1), ("AB", 1)]
