"""Turn one decoded JSON object into an :class:`EventRecord` with Sigma field names.

Two shapes are recognised:

* **Windows events** as the ``evtx`` package renders them (``{"Event": {"System": …,
  "EventData": …}}``; also accepted without the ``Event`` wrapper). Fields follow the names
  SigmaHQ rules use:

  - ``System`` elements keep their element name (``EventID``, ``Channel``, ``Computer``,
    ``EventRecordID``, ``Level``, ``Task``, ``Opcode``, ``Keywords``, ``Version``); XML attributes
    become ``<Element>_<Attribute>`` (``Provider_Name``, ``Provider_Guid``,
    ``TimeCreated_SystemTime``, ``Execution_ProcessID``, ``Security_UserID``,
    ``Correlation_ActivityID``, ``EventID_Qualifiers``). Both the inline ``#attributes`` form and
    the ``separate_json_attributes`` form (``Provider_attributes``) are read. ``EventID`` is
    always an int when it is numeric.
  - ``EventData`` named values use their name (``CommandLine``, ``param1``). Unnamed ``<Data>``
    values become ``Data`` (a string, or a list when there are several), which is what SigmaHQ's
    Application/System-channel rules match with ``Data|contains``. Attributes of ``EventData``
    itself become ``EventData_<Attribute>``.
  - ``UserData`` (and any other section, e.g. ``RenderingInfo``) is flattened to *leaf* names
    (``UserData.LogFileCleared.SubjectUserName`` → ``SubjectUserName``), attributes to
    ``<Element>_<Attribute>``; ``xmlns`` attributes are dropped as noise. Repeated elements give
    lists.
  - Precedence on a name clash: ``EventData``/``UserData`` overwrite ``System`` (the event payload
    is what rules are written against); other sections never overwrite (so
    ``RenderingInfo.Level``, a display string, does not replace the numeric ``Level``).

* **Any other JSON object**: nested objects flatten to dotted keys (``userIdentity.type``), which
  is how SigmaHQ's cloud rules name fields; the containing key itself is not kept (fields hold
  only scalars and lists of scalars). Lists of scalars stay lists. Lists of objects are
  "columnised": ``[{"type": "User"}, {"type": "Group", "id": 1}]`` under ``targetResources``
  gives ``targetResources.type == ["User", "Group"]`` and ``targetResources.id == [1]``, so a
  rule on ``targetResources.type`` matches if any element matches; element positions are not
  kept. Empty objects produce no field; empty lists stay ``[]``.

A top-level ``logsource`` object is removed from the fields and becomes
``EventRecord.logsource`` (its string values only).

Performance: this runs once per event on the hot path, so it walks each object once, never
copies values (lists from the decoder are reused as-is) and uses no regular expressions. When
``vigil._speedups`` is built, the usual Windows event (scalar and ``#attributes`` System
elements, flat EventData) is flattened in C; every other shape goes through the Python code
below, which stays the reference (``tests/test_speedups.py`` compares the two).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from vigil.events.model import EventRecord
from vigil.events.timestamps import parse_timestamp
from vigil.speedups import NATIVE

_ATTRS = "#attributes"
_TEXT = "#text"
_SEPARATE_ATTRS_SUFFIX = "_attributes"
_SECTIONS_HANDLED = frozenset({"System", "EventData", "UserData", _ATTRS})
#: EventData keys with a meaning of their own (anything else is a named value).
_EVENT_DATA_SPECIAL = frozenset({"Data", _ATTRS, _TEXT})
#: Value types stored as they are (no dict: those are flattened).
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_FLAT_TYPES = _SCALAR_TYPES | {list}
#: Top-level keys of a wrapped Windows event that are not collector metadata.
_WRAPPER_KEYS = frozenset({"Event", "Event" + _SEPARATE_ATTRS_SUFFIX, "logsource"})

#: Keys tried, in order, for a generic JSON event's timestamp (after flattening).
TIMESTAMP_KEYS: tuple[str, ...] = (
    "@timestamp",
    "timestamp",
    "Timestamp",
    "time",
    "eventTime",
    "EventTime",
    "TimeCreated",
    "TimeCreated.SystemTime",
    "TimeCreated_SystemTime",
    "UtcTime",
    "TimeGenerated",
    "event.created",
    "occurred_at",
    "created_at",
    "createdDateTime",
    "activityDateTime",
    "datetime",
    "date",
    "ts",
    "_time",
)


def normalise(
    obj: dict[str, Any], *, source_file: str = "", record_id: int | None = None
) -> EventRecord:
    """Build the :class:`EventRecord` for one decoded JSON object.

    Never raises for odd-but-valid JSON: unknown shapes are flattened generically and an
    unparseable timestamp simply gives ``timestamp=None``.
    """
    logsource: dict[str, str] | None = None
    hint = obj.get("logsource")
    if isinstance(hint, dict):
        logsource = {str(k): v for k, v in hint.items() if isinstance(v, str)} or None
    else:
        hint = None

    event = _windows_event(obj)
    if event is not None:
        fields = flatten_windows_event(event)
        if event is not obj and len(obj) > 1:
            # Extra keys beside "Event" (a collector's metadata): add, never overwrite.
            for key, value in obj.items():
                if key not in _WRAPPER_KEYS:
                    _flatten_json_value(fields, key, value, overwrite=False)
        timestamp = parse_timestamp(fields.get("TimeCreated_SystemTime"))
    else:
        fields = flatten_json(obj, skip="logsource" if hint is not None else None)
        timestamp = find_timestamp(fields)
    # Positional: cheaper than keywords, once per event.
    return EventRecord(fields, source_file, record_id, timestamp, logsource)


def _windows_event(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The ``Event`` body when ``obj`` is an EVTX-rendered Windows event, else None."""
    event = obj.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return event
    system = obj.get("System")
    if isinstance(system, dict) and ("EventID" in system or "Provider" in system):
        return obj
    return None


def find_timestamp(fields: dict[str, Any]) -> datetime | None:
    """The first parseable value among :data:`TIMESTAMP_KEYS`, as aware UTC, or None."""
    for key in TIMESTAMP_KEYS:
        value = fields.get(key)
        if value is not None:
            parsed = parse_timestamp(value)
            if parsed is not None:
                return parsed
    return None


# --- Windows events -------------------------------------------------------------------------


def flatten_windows_event(event: dict[str, Any]) -> dict[str, Any]:
    """Flatten an ``Event`` body (``System``/``EventData``/``UserData``…) to Sigma fields."""
    if _native_flatten is not None:
        # The common shapes in C; None hands the whole event to the Python code below.
        native = _native_flatten(event)
        if native is not None:
            return native
    return _flatten_windows_event(event)


#: ``vigil._speedups.flatten_windows_event``, or None for pure Python.
_native_flatten: Callable[[dict[str, Any]], dict[str, Any] | None] | None = (
    NATIVE.flatten_windows_event if NATIVE is not None else None
)


def _flatten_windows_event(event: dict[str, Any]) -> dict[str, Any]:
    """The reference of :func:`flatten_windows_event`, for every shape."""
    fields: dict[str, Any] = {}
    system = event.get("System")
    if isinstance(system, dict):
        _flatten_system(system, fields)
    data = event.get("EventData")
    if data is not None:
        _flatten_event_data(data, fields)
    user_data = event.get("UserData")
    if user_data is not None:
        _flatten_leaves(user_data, "", fields, overwrite=True)
    _add_spaceless_names(fields)
    if len(event) > 2:
        for section, value in event.items():
            if section in _SECTIONS_HANDLED:
                continue
            if section.endswith(_SEPARATE_ATTRS_SUFFIX) and isinstance(value, dict):
                # separate_json_attributes form of a section's attributes (EventData_attributes)
                element = section[: -len(_SEPARATE_ATTRS_SUFFIX)]
                for attr, attr_value in value.items():
                    if not attr.startswith("xmlns"):
                        fields.setdefault(f"{element}_{attr}", attr_value)
            else:
                _flatten_leaves(value, section, fields, overwrite=False)
    return fields


def _flatten_system(system: dict[str, Any], fields: dict[str, Any]) -> None:
    # type(x) is a specialised call, cheaper than the attribute lookup x.__class__.
    for key, value in system.items():
        kind = type(value)
        if kind in _SCALAR_TYPES:  # most elements: stored as they are
            if value is None and key + _SEPARATE_ATTRS_SUFFIX in system:
                continue  # see the same case below
            fields[key] = value
            continue
        if (
            kind is dict
            and len(value) == 1
            and type(attrs := value.get(_ATTRS)) is dict
            and not key.endswith(_SEPARATE_ATTRS_SUFFIX)
        ):
            # The usual shape, ``{"#attributes": {...}}``: no children to walk.
            for attr, attr_value in attrs.items():
                fields[f"{key}_{attr}"] = attr_value
            continue
        if isinstance(value, dict):
            if key.endswith(_SEPARATE_ATTRS_SUFFIX):
                element = key[: -len(_SEPARATE_ATTRS_SUFFIX)]
                for attr, attr_value in value.items():
                    fields[f"{element}_{attr}"] = attr_value
                continue
            attrs = value.get(_ATTRS)
            if isinstance(attrs, dict):
                for attr, attr_value in attrs.items():
                    fields[f"{key}_{attr}"] = attr_value
            for child, child_value in value.items():
                if child == _TEXT:
                    fields[key] = child_value
                elif child != _ATTRS:
                    # Not produced by evtx today; keep it addressable rather than drop it.
                    _flatten_leaves(child_value, f"{key}_{child}", fields, overwrite=True)
        elif value is None and key + _SEPARATE_ATTRS_SUFFIX in system:
            # separate_json_attributes renders <Provider Name=…/> as Provider: null plus
            # Provider_attributes; the empty element itself carries nothing.
            continue
        else:
            fields[key] = value
    event_id = fields.get("EventID")
    if isinstance(event_id, str) and event_id.isdigit():
        fields["EventID"] = int(event_id)


def _add_spaceless_names(fields: dict[str, Any]) -> None:
    """Also expose ``Threat Name`` as ``ThreatName``: Sigma field names drop the spaces of
    Windows event data names (rules-specification, field naming), e.g. Defender's events."""
    try:
        if " " not in "\x1f".join(fields):  # one C-level pass instead of a loop over the names
            return
    except TypeError:  # a name that is not a string: look at each
        pass
    spaced = [k for k in fields if " " in k]
    for key in spaced:
        fields.setdefault(key.replace(" ", ""), fields[key])


def _flatten_event_data(data: Any, fields: dict[str, Any]) -> None:
    if not isinstance(data, dict):
        # <EventData>text</EventData> or a bare list of values: all of it is unnamed data.
        _set_unnamed_data(data, fields)
        return
    if _EVENT_DATA_SPECIAL.isdisjoint(data) and _FLAT_TYPES.issuperset(map(type, data.values())):
        # The usual shape: named scalar values only. One C-level update, same order and values
        # as the loop below.
        fields.update(data)
        return
    for key, value in data.items():
        if key == "Data":
            _set_unnamed_data(value, fields)
        elif key == _ATTRS:
            if isinstance(value, dict):
                for attr, attr_value in value.items():
                    if not attr.startswith("xmlns"):
                        fields[f"EventData_{attr}"] = attr_value
        elif key == _TEXT:
            _set_unnamed_data(value, fields)
        elif isinstance(value, dict):
            _flatten_leaves(value, key, fields, overwrite=True)
        else:
            fields[key] = value


def _set_unnamed_data(value: Any, fields: dict[str, Any]) -> None:
    """Store unnamed ``<Data>`` content as ``Data``; named items that slipped through keep names.

    Forms seen in the wild: ``"x"``, ``{"#text": "x"}``, ``{"#text": ["x", "y"]}``,
    ``["x", "y"]`` and lists of ``{"#attributes": {"Name": …}, "#text": …}`` from other
    converters.
    """
    if isinstance(value, dict):
        attrs = value.get(_ATTRS)
        name = attrs.get("Name") if isinstance(attrs, dict) else None
        text = value.get(_TEXT)
        if isinstance(name, str):
            fields[name] = text
        else:
            _add_data(text, fields)
        return
    if isinstance(value, list):
        unnamed: list[Any] = []
        for item in value:
            if isinstance(item, dict):
                attrs = item.get(_ATTRS)
                name = attrs.get("Name") if isinstance(attrs, dict) else None
                if isinstance(name, str):
                    fields[name] = item.get(_TEXT)
                else:
                    unnamed.append(item.get(_TEXT))
            else:
                unnamed.append(item)
        if unnamed:
            _add_data(unnamed[0] if len(unnamed) == 1 else unnamed, fields)
        return
    _add_data(value, fields)


def _add_data(value: Any, fields: dict[str, Any]) -> None:
    """Set ``Data``, merging into a list if ``Data`` is already there (mixed forms)."""
    if "Data" not in fields:
        fields["Data"] = value
        return
    existing = fields["Data"]
    merged = list(existing) if isinstance(existing, list) else [existing]
    if isinstance(value, list):
        merged.extend(value)
    else:
        merged.append(value)
    fields["Data"] = merged


def _flatten_leaves(value: Any, name: str, fields: dict[str, Any], *, overwrite: bool) -> None:
    """Flatten XML-shaped JSON to leaf element names (``UserData`` and friends).

    ``name`` is the element ``value`` belongs to ("" at the section root, where a bare value has
    no name worth keeping).
    """
    if isinstance(value, dict):
        for key, child in value.items():
            if key == _ATTRS:
                if isinstance(child, dict):
                    for attr, attr_value in child.items():
                        if not attr.startswith("xmlns"):
                            _put(fields, f"{name}_{attr}" if name else attr, attr_value, overwrite)
            elif key == _TEXT:
                if name:
                    _put(fields, name, child, overwrite)
            else:
                _flatten_leaves(child, key, fields, overwrite=overwrite)
    elif isinstance(value, list):
        if _all_scalars(value):
            if name:
                _put(fields, name, value, overwrite)
            return
        # Repeated complex elements: collect each leaf across the repeats into a list.
        collected: dict[str, list[Any]] = {}
        for item in value:
            one: dict[str, Any] = {}
            _flatten_leaves(item, name, one, overwrite=True)
            for key, leaf in one.items():
                bucket = collected.setdefault(key, [])
                if isinstance(leaf, list):
                    bucket.extend(leaf)
                else:
                    bucket.append(leaf)
        for key, bucket in collected.items():
            _put(fields, key, bucket[0] if len(bucket) == 1 else bucket, overwrite)
    elif name:
        _put(fields, name, value, overwrite)


def _put(fields: dict[str, Any], key: str, value: Any, overwrite: bool) -> None:
    if overwrite:
        fields[key] = value
    else:
        fields.setdefault(key, value)


def _all_scalars(items: list[Any]) -> bool:
    # A plain loop: measurably cheaper than all(<genexpr>) on the short lists events carry.
    for item in items:
        if isinstance(item, dict | list):
            return False
    return True


# --- Generic JSON ---------------------------------------------------------------------------


def flatten_json(obj: dict[str, Any], *, skip: str | None = None) -> dict[str, Any]:
    """Flatten a JSON object: nested objects to dotted keys, lists of objects columnised.

    ``skip`` names one top-level key to leave out (the ``logsource`` hint).
    """
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        if key != skip:
            _flatten_json_value(fields, key, value, overwrite=True)
    return fields


def _flatten_json_value(fields: dict[str, Any], key: str, value: Any, *, overwrite: bool) -> None:
    if isinstance(value, dict):
        prefix = key + "."
        for child_key, child in value.items():
            _flatten_json_value(fields, prefix + child_key, child, overwrite=overwrite)
    elif isinstance(value, list) and not _all_scalars(value):
        columns: dict[str, Any] = {}
        scalars: list[Any] = []
        _columnise(value, key, columns, scalars)
        if scalars:
            _put(fields, key, scalars, overwrite)
        for column, items in columns.items():
            _put(fields, column, items, overwrite)
    else:
        _put(fields, key, value, overwrite)


def _columnise(items: list[Any], key: str, columns: dict[str, Any], scalars: list[Any]) -> None:
    """Spread a list that holds objects into per-dotted-key lists (see module docstring)."""
    for item in items:
        if isinstance(item, dict):
            one: dict[str, Any] = {}
            for child_key, child in item.items():
                _flatten_json_value(one, f"{key}.{child_key}", child, overwrite=True)
            for column, leaf in one.items():
                bucket = columns.get(column)
                if bucket is None:
                    bucket = columns[column] = []
                if isinstance(leaf, list):
                    bucket.extend(leaf)
                else:
                    bucket.append(leaf)
        elif isinstance(item, list):
            _columnise(item, key, columns, scalars)
        else:
            scalars.append(item)
