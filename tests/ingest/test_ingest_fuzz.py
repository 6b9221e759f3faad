"""Property test: malformed bodies never produce a 500, and every accepted record is queued."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.ingest.conftest import Service

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
# Records that look like what the server understands, with holes in them.
shaped_records = st.one_of(
    st.fixed_dictionaries(
        {"event_type": st.text(max_size=12), "source": json_values, "severity": json_values},
        optional={
            "event_id": json_values,
            "details": json_values,
            "metadata": json_values,
            "timestamp": json_values,
        },
    ),
    st.fixed_dictionaries(
        {"Event": st.one_of(json_values, st.fixed_dictionaries({"System": json_values}))}
    ),
    st.fixed_dictionaries(
        {"logsource": json_values}, optional={"event_id": json_values, "msg": json_values}
    ),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)


def _dump(value: Any) -> bytes:
    return orjson.dumps(value)


json_docs = st.one_of(
    json_values.map(_dump),
    st.lists(st.one_of(shaped_records, json_values), max_size=6).map(_dump),
    shaped_records.map(_dump),
)
ndjson_docs = st.lists(
    st.one_of(shaped_records.map(_dump), json_values.map(_dump), st.binary(max_size=30)),
    max_size=8,
).map(lambda lines: b"\n".join(line.replace(b"\n", b" ") for line in lines))
bodies = st.one_of(json_docs, ndjson_docs, st.binary(max_size=300))
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "application/x-ndjson",
        "text/plain",
        "application/octet-stream",
        "",
        ";;;",
        "application/x-ndjson; q=0.5",
    ]
)
encodings = st.sampled_from(["none", "gzip", "gzip-header-only", "truncated-gzip", "deflate"])


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, content_type=content_types, encoding=encodings)
def test_no_500_and_nothing_accepted_is_lost(
    service: Service, body: bytes, content_type: str | None, encoding: str
) -> None:
    headers: dict[str, str] = {}
    if content_type is not None:
        headers["content-type"] = content_type
    if encoding == "gzip":
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    elif encoding == "gzip-header-only":
        headers["content-encoding"] = "gzip"
    elif encoding == "truncated-gzip":
        body, headers["content-encoding"] = gzip.compress(body)[:-4], "gzip"
    elif encoding == "deflate":
        headers["content-encoding"] = "deflate"
    tenant = service.other.tenant_id
    before = service.queued(tenant)
    with service.server.client(service.other.admin_key) as http:
        r = http.post("/v1/events", content=body, headers=headers)
    assert r.status_code in (202, 413, 415, 422), (r.status_code, r.text)
    answer = r.json()
    after = service.queued(tenant)
    if r.status_code == 202:
        assert after - before == answer["accepted"]
        assert answer["accepted"] + answer["duplicates"] >= 1
    else:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert after == before
