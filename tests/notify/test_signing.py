"""The webhook signature scheme: what receivers verify (vigil.notify.signing)."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from vigil.notify.signing import (
    compute_signature,
    generate_secret,
    parse_signature_header,
    sign,
    verify_signature,
)

SECRET = "whsec_test-secret-0123456789"
BODY = b'{"event_id":"8d0c","severity":"high"}'


def test_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert compute_signature(SECRET, 1700000000, BODY) == expected
    assert sign([SECRET], BODY, timestamp=1700000000) == f"t=1700000000,v1={expected}"


def test_valid_signature_within_tolerance() -> None:
    header = sign([SECRET], BODY, timestamp=1_000)
    assert verify_signature(SECRET, header, BODY, 300, now=1_000)
    assert verify_signature(SECRET, header, BODY, 300, now=1_300)
    assert verify_signature(SECRET, header, BODY, 300, now=700)


def test_old_or_future_timestamps_are_refused() -> None:
    header = sign([SECRET], BODY, timestamp=1_000)
    assert not verify_signature(SECRET, header, BODY, 300, now=1_301)
    assert not verify_signature(SECRET, header, BODY, 300, now=699)


def test_wrong_secret_body_or_timestamp_is_refused() -> None:
    header = sign([SECRET], BODY, timestamp=1_000)
    assert not verify_signature(SECRET + "x", header, BODY, now=1_000)
    assert not verify_signature(SECRET, header, BODY + b"\n", now=1_000)
    forged_time = header.replace("t=1000", "t=1001")
    assert not verify_signature(SECRET, forged_time, BODY, now=1_000)


def test_rotation_header_carries_both_signatures_and_either_secret_verifies() -> None:
    old = "whsec_old-secret-0123456789"
    header = sign([SECRET, old], BODY, timestamp=5)
    ts, sigs = parse_signature_header(header)
    assert ts == 5 and len(sigs) == 2
    assert verify_signature(SECRET, header, BODY, now=5)
    assert verify_signature(old, header, BODY, now=5)
    assert not verify_signature("whsec_unrelated-0123456789", header, BODY, now=5)


def test_malformed_headers_are_simply_invalid() -> None:
    for header in ["", "garbage", "t=abc,v1=00", "v1=00", "t=5", "t=5,v1", "t=-5,v1=aa", ",,,"]:
        assert not verify_signature(SECRET, header, BODY, now=5)


def test_unknown_schemes_are_ignored() -> None:
    header = sign([SECRET], BODY, timestamp=5) + ",v0=deadbeef"
    assert verify_signature(SECRET, header, BODY, now=5)


def test_generated_secrets_are_unique_and_long() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(s.startswith("whsec_") and len(s) >= 40 for s in secrets)


@given(
    secret=st.text(min_size=1, max_size=80), body=st.binary(max_size=2000), t=st.integers(0, 2**40)
)
def test_sign_then_verify_round_trips(secret: str, body: bytes, t: int) -> None:
    assert verify_signature(secret, sign([secret], body, timestamp=t), body, 0, now=t)


@given(body=st.binary(min_size=1, max_size=500), data=st.data())
def test_any_changed_byte_breaks_the_signature(body: bytes, data: st.DataObject) -> None:
    header = sign([SECRET], body, timestamp=10)
    i = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:i] + bytes([body[i] ^ flip]) + body[i + 1 :]
    assert not verify_signature(SECRET, header, tampered, now=10)


def test_the_documented_receiver_snippet_verifies_real_signatures() -> None:
    """docs/notifications.md shows receivers a self-contained check; it must agree with us."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "notifications.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    [snippet] = [b for b in blocks if "def verify_signature" in b]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/notifications.md", "exec"), namespace)
    documented = namespace["verify_signature"]
    header = sign([SECRET], BODY)
    assert documented(SECRET, header, BODY)
    assert not documented(SECRET, header, BODY + b"x")
    assert not documented("whsec_other-secret-0123", header, BODY)
    assert not documented(SECRET, sign([SECRET], BODY, timestamp=int(time.time()) - 3600), BODY)
    rotated = sign(["whsec_new-secret-0123456789", SECRET], BODY)
    assert documented(SECRET, rotated, BODY)
