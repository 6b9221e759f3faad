"""Body decoding and per-record checks, without a server (the edge cases, quickly)."""

from __future__ import annotations

import gzip

import orjson
import pytest

from vigil.errors import InvalidInputError, PayloadTooLargeError
from vigil.ingest.parse import BodyFormat, Limits, gunzip, parse_body

LIMITS = Limits(max_decoded_bytes=1 << 20, max_record_bytes=4096, max_depth=8)


def _parse(
    body: bytes, fmt: BodyFormat = BodyFormat.NDJSON
) -> tuple[list[str | None], dict[int, str]]:
    batch = parse_body(body, fmt, tenant_id="t1", limits=LIMITS)
    return [r.event_id for r in batch.records], {r.index: r.error for r in batch.rejected}


def test_gunzip_members_bounds_and_damage() -> None:
    two_members = gzip.compress(b'{"a": 1}\n') + gzip.compress(b'{"b": 2}\n')
    assert gunzip(two_members, limit=100) == b'{"a": 1}\n{"b": 2}\n'
    with pytest.raises(PayloadTooLargeError):
        gunzip(gzip.compress(b"x" * 101), limit=100)
    with pytest.raises(InvalidInputError):
        gunzip(b"\x1f\x8b\x08garbage", limit=100)
    with pytest.raises(InvalidInputError):
        gunzip(gzip.compress(b"abc")[:-3], limit=100)


def test_event_ids_and_their_rules() -> None:
    lines = [
        {"event_id": "a", "x": 1},
        {"event_id": 42, "x": 1},
        {"event_id": "", "x": 1},
        {"event_id": True, "x": 1},
        {"event_id": "x" * 129, "x": 1},
        {"event_id": "bad\nid", "x": 1},
        {"x": 1},
    ]
    ids, errors = _parse(b"\n".join(orjson.dumps(line) for line in lines))
    assert ids == ["a", "42", None]
    assert sorted(errors) == [2, 3, 4, 5]
    assert all(e.startswith("event_id:") for e in errors.values())


def test_envelope_id_is_normalised_and_optional() -> None:
    base = {"source": {"service": "s"}, "event_type": "access_denied", "severity": "low"}
    upper = {**base, "event_id": "2B0C5A4E-7F53-4C16-9A39-0A8F5F8F1E11"}
    ids, errors = _parse(orjson.dumps([upper, base, {**base, "event_id": "nope"}]), BodyFormat.JSON)
    assert ids == ["2b0c5a4e-7f53-4c16-9a39-0a8f5f8f1e11", None]
    assert errors[2].startswith("event_id:")


def test_depth_size_and_windows_shapes() -> None:
    deep: object = 1
    for _ in range(9):
        deep = [deep]
    records = [
        {"a": deep},
        {"pad": "y" * 5000},
        {"Event": {"System": {"EventID": {"#text": "4624"}}}},
        {"System": {"EventID": 7}, "EventData": None},
        {"Event": {"System": []}},
        {"Event": {"System": {"EventID": None}}},
        {"Event": "text"},
    ]
    ids, errors = _parse(b"\n".join(orjson.dumps(r) for r in records))
    assert len(ids) == 2
    assert "nested deeper than 8" in errors[0]
    assert "larger than 4096" in errors[1]
    assert errors[4].startswith("Event.System:")
    assert errors[5].startswith("Event.System.EventID:")
    assert errors[6].startswith("Event:")


def test_whole_body_problems() -> None:
    for body in (b"{", b"12", b'"x"', b"null"):
        with pytest.raises(InvalidInputError):
            parse_body(body, BodyFormat.JSON, tenant_id="t", limits=LIMITS)
    batch = parse_body(b"\r\n  \n\t\n", BodyFormat.NDJSON, tenant_id="t", limits=LIMITS)
    assert batch.total == 0 and not batch.records
