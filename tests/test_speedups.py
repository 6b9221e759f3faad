"""The C kernels of ``vigil._speedups`` against the Python code they stand in for.

Every C function must give what the Python reference gives (same keys, order, value types and
values; same exception type) or hand the case back (None). Checked on every event of SigmaHQ's
regression EVTX files, read through Vigil's own EVTX reader, and on generated events with odd
shapes and text beyond ASCII.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil import speedups
from vigil.detect.sigma import context
from vigil.detect.sigma.context import EventContext, LoweredFields, NotFlat
from vigil.events import evtx_reader
from vigil.events.model import EventRecord
from vigil.events.normalise import _flatten_windows_event, _windows_event, flatten_windows_event
from vigil.events.normalise import normalise as normalise_event

SIGMA = Path(__file__).resolve().parents[1].parent / "shared" / "sigma"

NATIVE = speedups.load(pure=False)


def test_extension_built_when_required() -> None:
    """CI sets VIGIL_REQUIRE_SPEEDUPS=1: an optional build that failed silently fails here."""
    if os.environ.get("VIGIL_REQUIRE_SPEEDUPS", "") in ("", "0"):
        pytest.skip("VIGIL_REQUIRE_SPEEDUPS is not set: the extension is optional")
    assert NATIVE is not None, "vigil._speedups was not built (see pip's output for the error)"


def test_pure_python_switch() -> None:
    assert speedups.load(pure=True) is None
    assert speedups.load(pure=False) is NATIVE


@pytest.fixture
def native() -> ModuleType:
    if NATIVE is None:
        pytest.skip("vigil._speedups is not built (no C compiler or Python headers)")
    return NATIVE


# --------------------------------------------------------------------------- references


@contextmanager
def pure_text() -> Iterator[None]:
    saved = context._native_lower_join
    context._native_lower_join = None
    try:
        yield
    finally:
        context._native_lower_join = saved


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("raised", type(exc))


def typed(value: Any) -> Any:
    """``value`` with types made visible (1, 1.0 and True are == in Python)."""
    if isinstance(value, dict):
        return [(type(k), k, typed(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return (type(value), [typed(v) for v in value])
    return (type(value), value)


def py_lower_fields(fields: dict[str, Any], names: tuple[str, ...]) -> Any:
    """What the generated prelower block (codegen.BucketSource.lower) does for ``names``."""
    lowered = LoweredFields()
    lowered.fields = fields

    def run() -> tuple[str | None, ...]:
        out: list[str | None] = []
        for name in names:
            v = fields.get(name)
            if v.__class__ is str:
                lowered[name] = s = v.lower()
            elif v is None:
                lowered[name] = s = None
            else:
                s = lowered[name]
            out.append(s)
        return tuple(out)

    return outcome(run), dict(lowered)


def check_lowering(native: ModuleType, fields: dict[str, Any]) -> bool:
    """C text and prelowering == Python; True when C handled the text itself."""
    handled = False
    for strings_only in (True, False):
        with pure_text():
            ctx = EventContext(fields)
            expected = outcome(ctx.string_text if strings_only else ctx.text)
        got = outcome(lambda s=strings_only: native.lower_join(fields, s))  # type: ignore[misc]
        if got != ("ok", None):
            handled = True
            assert typed(got) == typed(expected), (fields, strings_only)
    names = (*fields, "Absent")
    lowered = LoweredFields()
    lowered.fields = fields
    got_fields = outcome(lambda: native.lower_fields(fields, lowered, names))
    expected_fields, expected_lowered = py_lower_fields(fields, names)
    assert typed(got_fields) == typed(expected_fields), fields
    assert typed(dict(lowered)) == typed(expected_lowered), fields
    return handled


def check_flatten(native: ModuleType, event: Any) -> bool:
    """C flatten == Python flatten; True when C handled the event itself."""
    got = outcome(lambda: native.flatten_windows_event(event))
    if got == ("ok", None):
        return False
    expected = outcome(lambda: _flatten_windows_event(event))
    assert typed(got) == typed(expected), event
    return True


# --------------------------------------------------------------------------- regression data


@pytest.fixture(scope="module")
def regression_objects() -> list[dict[str, Any]]:
    """The decoded JSON of every regression event, as Vigil's EVTX reader hands it over."""
    if not SIGMA.is_dir():
        pytest.skip(f"SigmaHQ regression data not found at {SIGMA}")
    seen: list[dict[str, Any]] = []
    real = normalise_event

    def capture(obj: dict[str, Any], **kwargs: Any) -> EventRecord:
        seen.append(obj)
        return real(obj, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setattr(evtx_reader, "normalise", capture)
    try:
        for path in sorted((SIGMA / "regression_data").rglob("*.evtx")):
            list(evtx_reader.read_evtx(path))
    finally:
        mp.undo()
    assert len(seen) > 200
    return seen


def test_regression_events_flatten(
    native: ModuleType, regression_objects: list[dict[str, Any]]
) -> None:
    handled = 0
    for obj in regression_objects:
        event = _windows_event(obj)
        assert event is not None
        handled += check_flatten(native, event)
    # The point of the C path: it takes the usual events, not only the trivial ones.
    assert handled > 0.9 * len(regression_objects), (handled, len(regression_objects))


def test_regression_events_lowering(
    native: ModuleType, regression_objects: list[dict[str, Any]]
) -> None:
    handled = 0
    for obj in regression_objects:
        fields = normalise_event(obj).fields
        handled += check_lowering(native, fields)
    assert handled > 0.9 * len(regression_objects), (handled, len(regression_objects))


# --------------------------------------------------------------------------- generated events

TEXT = st.text(
    st.one_of(
        st.characters(max_codepoint=0x7F),
        st.characters(min_codepoint=0x80, max_codepoint=0xFF),
        st.sampled_from("ΣσςİıßẞǅK\u212a\u0130\u03a3\U0001d400\U00010400ﬃ "),
        st.characters(),
    ),
    max_size=12,
)
NAMES = st.one_of(
    st.sampled_from(
        [
            "EventID",
            "Provider",
            "Provider_attributes",
            "TimeCreated",
            "Data",
            "#attributes",
            "#text",
            "Threat Name",
            "ThreatName",
            "Image",
            "Level",
            " ",
            "a b c",
            "Σ Name",
        ]
    ),
    TEXT,
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    TEXT,
    st.sampled_from(["4688", "0001", "", "12a", "١٢", "²", "9" * 40, "Σ", "İ"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)),
    max_leaves=8,
)
ATTRS = st.dictionaries(NAMES, SCALARS, max_size=3)
SYSTEM_VALUES = st.one_of(
    SCALARS,
    st.builds(lambda a: {"#attributes": a}, ATTRS),
    st.builds(lambda a, t: {"#attributes": a, "#text": t}, ATTRS, SCALARS),
    ATTRS,
    VALUES,
)
SECTIONS = st.sampled_from(["System", "EventData", "UserData", "#attributes", "RenderingInfo"])


@st.composite
def windows_events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {}
    if draw(st.booleans()):
        event["#attributes"] = draw(ATTRS)
    if draw(st.integers(0, 9)):
        event["System"] = draw(
            st.one_of(st.dictionaries(NAMES, SYSTEM_VALUES, max_size=8), VALUES)
            if draw(st.integers(0, 9)) == 0
            else st.dictionaries(NAMES, SYSTEM_VALUES, max_size=8)
        )
    if draw(st.integers(0, 9)):
        flat = st.dictionaries(NAMES, st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
        event["EventData"] = draw(flat if draw(st.integers(0, 3)) else VALUES)
    for section in draw(st.lists(SECTIONS, max_size=2)):
        event[section] = draw(st.one_of(st.none(), VALUES))
    return event


SETTINGS = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(event=windows_events())
def test_generated_events(event: dict[str, Any]) -> None:
    if NATIVE is None:
        pytest.skip("vigil._speedups is not built")
    check_flatten(NATIVE, event)
    fields = outcome(lambda: _flatten_windows_event(event))
    if fields[0] == "ok":
        check_lowering(NATIVE, fields[1])


@SETTINGS
@given(fields=st.dictionaries(NAMES, st.one_of(SCALARS, SCALARS, VALUES), max_size=10))
def test_generated_field_values(fields: dict[str, Any]) -> None:
    if NATIVE is None:
        pytest.skip("vigil._speedups is not built")
    check_lowering(NATIVE, fields)


def test_text_beyond_latin1(native: ModuleType) -> None:
    """Final sigma, dotted I, Kelvin sign: the values that need the real str.lower()."""
    fields = {"A": "ΟΔΟΣ", "B": "İSTANBUL", "C": "\u212a", "D": "Microsoft®", "E": 7, "F": None}
    with pure_text():
        expected = (EventContext(fields).string_text(), EventContext(fields).text())
    assert (native.lower_join(fields, True), native.lower_join(fields, False)) == expected
    assert expected[0] == "οδος\x1fi̇stanbul\x1fk\x1fmicrosoft®"


# --------------------------------------------------------------------------- errors, refcounts


def test_lower_fields_propagates_errors(native: ModuleType) -> None:
    lowered = LoweredFields()
    lowered.fields = {"A": ["x"], "B": "X"}
    with pytest.raises(NotFlat):
        native.lower_fields(lowered.fields, lowered, ("B", "A"))
    assert lowered == {"B": "x"}  # filled in order up to the failing name, as the Python code

    class Refusing(dict[str, Any]):
        def __setitem__(self, key: str, value: Any) -> None:
            raise ValueError(key)

    with pytest.raises(ValueError, match="B"):
        native.lower_fields({"B": "X"}, Refusing(), ("B",))

    class Missing(dict[str, Any]):
        def __missing__(self, key: str) -> Any:
            raise LookupError(key)

    with pytest.raises(LookupError):
        native.lower_fields({"N": 1.5}, Missing(), ("N",))
    with pytest.raises(TypeError):
        native.lower_fields({}, {}, ["A"])
    with pytest.raises(TypeError):
        native.lower_join([], True)


def test_flatten_bails_out_on_other_shapes(native: ModuleType) -> None:
    system = {"EventID": "1", "Provider": {"#attributes": {"Name": "X"}}}
    assert native.flatten_windows_event({"System": system}) == {"EventID": 1, "Provider_Name": "X"}
    for event in (
        {"System": system, "UserData": {"X": {"A": "1"}}},
        {"System": system, "EventData": {"Data": ["a", "b"]}},
        {"System": system, "RenderingInfo": {"Level": "Information"}},
        {"System": {**system, "Provider_attributes": {"Name": "Y"}}},
        {"System": {"EventID": {"#attributes": {"Qualifiers": 0}, "#text": "4"}}},
        {"System": {"EventID": "١٢"}},
    ):
        assert native.flatten_windows_event(event) is None, event
    # The public function gives the Python result for those.
    event = {"System": {"EventID": "١٢"}}
    assert flatten_windows_event(event) == _flatten_windows_event(event)


def test_no_reference_leaks(native: ModuleType) -> None:
    """Each kernel, on its handled and its bail-out paths: no object count growth."""
    import sys
    import tracemalloc

    event = {
        "#attributes": {"xmlns": "x"},
        "System": {
            "Provider": {"#attributes": {"Name": "Sysmon", "Guid": "{5770385F}"}},
            "EventID": "1",
            "Execution": None,
            "Execution_attributes": {"ProcessID": 4},
            "Computer": "PC",
        },
        "EventData": {"Threat Name": "Ǆ", "Image": "C:\\X.EXE", "Pid": 4, "L": ["a"]},
    }
    odd = {"System": {"EventID": "2"}, "EventData": {"Data": ["a", {"#text": "b"}]}}
    fields = flatten_windows_event(event)
    names = tuple(fields)

    def once() -> None:
        native.flatten_windows_event(event)
        native.flatten_windows_event(odd)
        native.lower_join(fields, True)
        native.lower_join({**fields, "F": 1.5}, False)
        native.lower_join({"A": "É", "B": 12345678901234567890, "C": None}, False)
        lowered = LoweredFields()
        lowered.fields = {"A": "Σ", "B": 2, "C": None}
        native.lower_fields(lowered.fields, lowered, ("A", "B", "C", "D"))
        lowered.fields = fields
        with suppress(NotFlat):
            native.lower_fields(fields, lowered, names)

    # The event's own objects (shared ones, such as small ints, are referenced from anywhere).
    inputs = [o for o in (*fields.values(), *fields) if sys.getrefcount(o) < 10_000]
    assert any(isinstance(o, list) for o in inputs)
    for _ in range(100):
        once()
    refs = [sys.getrefcount(obj) for obj in inputs]
    tracemalloc.start()
    try:
        once()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(2000):
            once()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A reference kept per call would keep 2000 objects (tens of kB) alive.
    assert grown < 4000, grown
    assert [sys.getrefcount(obj) for obj in inputs] == refs
