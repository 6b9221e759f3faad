"""POST /v1/events against the real server: formats, validation, limits, idempotency, auth."""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ingest.conftest import SAMPLE_EVENTS, Service

NDJSON = {"content-type": "application/x-ndjson"}
MIB = 1024 * 1024


def envelope(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "timestamp": "2026-11-21T08:00:00Z",
        "source": {"service": "edr", "instance": "edr-1"},
        "event_type": "access_denied",
        "severity": "medium",
        "details": {"user": "bob"},
    }
    event.update(changes)
    return event


@pytest.fixture
def http(service: Service) -> Iterator[httpx.Client]:
    with service.server.client(service.acme.admin_key) as client:
        yield client


def test_ndjson_gzip_object_and_array(service: Service, http: httpx.Client) -> None:
    before = service.queued(service.acme.tenant_id)
    body = SAMPLE_EVENTS.read_bytes()
    lines = len([line for line in body.splitlines() if line.strip()])
    r = http.post("/v1/events", content=body, headers=NDJSON)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": lines, "duplicates": 0, "rejected": [], "rejected_total": 0}
    r = http.post(
        "/v1/events",
        content=gzip.compress(body),
        headers={**NDJSON, "content-encoding": "gzip"},
    )
    assert r.json()["accepted"] == lines
    assert http.post("/v1/events", json={"message": "hello"}).json()["accepted"] == 1
    assert http.post("/v1/events", json=[{"a": 1}, {"b": 2}]).json()["accepted"] == 2
    assert service.queued(service.acme.tenant_id) == before + 2 * lines + 3


def test_partial_batch_names_index_and_field(http: httpx.Client) -> None:
    records = [
        {"message": "fine", "logsource": {"product": "linux"}},
        envelope(severity="catastrophic"),
        {"Event": {"System": {"EventID": "four"}}},
        {"logsource": {"product": 7}, "x": 1},
        {"event_id": {"nested": True}, "x": 1},
        [1, 2],
        {},
        envelope(source={"instance": "no-service"}),
        envelope(metadata={"tenant_id": "someone-else"}),
        envelope(),
    ]
    r = http.post("/v1/events", json=records)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["accepted"] == 2 and body["rejected_total"] == 8
    fields = {item["index"]: item["field"] for item in body["rejected"]}
    assert fields == {
        1: "severity",
        2: "Event.System.EventID",
        3: "logsource.product",
        4: "event_id",
        5: "",
        6: "",
        7: "source.service",
        8: "metadata.tenant_id",
    }
    assert all(item["error"] for item in body["rejected"])


def test_ndjson_bad_lines_report_their_line(http: httpx.Client) -> None:
    body = b'{"a": 1}\n\n{not json}\n"text"\n{"b": 2}\n'
    r = http.post("/v1/events", content=body, headers=NDJSON)
    assert r.status_code == 202
    rejected = r.json()["rejected"]
    assert [(x["index"], x["line"]) for x in rejected] == [(1, 3), (2, 4)]
    assert "invalid JSON" in rejected[0]["error"]


def test_nothing_acceptable_is_422_problem(http: httpx.Client) -> None:
    r = http.post("/v1/events", json=[envelope(severity="nope"), 5])
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert [e["field"] for e in problem["errors"]] == ["body[0].severity", "body[1]"]
    assert problem["accepted"] == 0 and problem["rejected_total"] == 2
    for body in (b"", b"[]", b"\n\n"):
        r = http.post("/v1/events", content=body, headers=NDJSON)
        assert r.status_code == 422, body
    r = http.post("/v1/events", content=b'{"a": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    r = http.post("/v1/events", content=b'"just a string"')
    assert r.status_code == 422


def test_same_batch_twice_creates_nothing_twice(service: Service, http: httpx.Client) -> None:
    ids = [str(uuid.uuid4()) for _ in range(5)]
    batch = [envelope(event_id=i) for i in ids] + [{"event_id": f"flat-{i}", "x": 1} for i in ids]
    first = http.post("/v1/events", json=batch).json()
    before = service.queued(service.acme.tenant_id)
    second = http.post("/v1/events", json=batch).json()
    assert (first["accepted"], first["duplicates"]) == (10, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 10)
    assert service.queued(service.acme.tenant_id) == before
    # the same ids belong to nobody else: another tenant may use them
    with service.server.client(service.other.admin_key) as other:
        assert other.post("/v1/events", json=batch).json()["accepted"] == 10


def test_envelope_may_name_its_own_tenant(service: Service, http: httpx.Client) -> None:
    own = envelope(metadata={"tenant_id": service.acme.tenant_id})
    assert http.post("/v1/events", json=own).json()["accepted"] == 1


def test_size_limits(http: httpx.Client) -> None:
    big = b'{"x": "' + b"a" * (10 * MIB) + b'"}'
    r = http.post("/v1/events", content=big)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(11):
            yield b" " * MIB

    r = http.post("/v1/events", content=chunks())
    assert r.status_code == 413
    bomb = gzip.compress(b"\n" * (64 * MIB))
    assert len(bomb) < MIB
    r = http.post("/v1/events", content=bomb, headers={**NDJSON, "content-encoding": "gzip"})
    assert r.status_code == 413
    huge_record = b'{"x": "' + b"a" * (2 * MIB) + b'"}\n{"ok": 1}\n'
    r = http.post("/v1/events", content=huge_record, headers=NDJSON)
    assert r.status_code == 202 and r.json()["rejected"][0]["index"] == 0


def test_deep_nesting_is_rejected_per_record(http: httpx.Client) -> None:
    deep = "[" * 40 + "]" * 40
    body = f'{{"a": {deep}}}\n{{"ok": 1}}\n'.encode()
    r = http.post("/v1/events", content=body, headers=NDJSON)
    assert r.status_code == 202
    assert "nested deeper" in r.json()["rejected"][0]["error"]
    very_deep = ("[" * 5000 + "]" * 5000).encode()  # beyond the JSON decoder's own limit
    r = http.post("/v1/events", content=b'{"a": ' + very_deep + b"}", headers=NDJSON)
    assert r.status_code == 422


def test_bad_encodings_and_types(http: httpx.Client) -> None:
    r = http.post("/v1/events", content=b"not gzip", headers={"content-encoding": "gzip"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    truncated = gzip.compress(b'{"a": 1}')[:-6]
    r = http.post("/v1/events", content=truncated, headers={"content-encoding": "gzip"})
    assert r.status_code == 422
    r = http.post("/v1/events", content=b"{}", headers={"content-encoding": "br"})
    assert r.status_code == 415
    for media in ("text/plain", "application/xml", "multipart/form-data"):
        r = http.post("/v1/events", content=b'{"a": 1}', headers={"content-type": media})
        assert r.status_code == 415, media
    r = http.post(
        "/v1/events", content=b'{"a": 1}', headers={"content-type": "application/cloudevents+json"}
    )
    assert r.status_code == 202


def test_authentication_and_permission(service: Service) -> None:
    with service.server.client() as anonymous:
        assert anonymous.post("/v1/events", json={"a": 1}).status_code == 401
    with service.server.client(service.viewer_key) as viewer:
        assert viewer.post("/v1/events", json={"a": 1}).status_code == 403
