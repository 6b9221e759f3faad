"""Errors become RFC 9457 problem documents in one place."""

from __future__ import annotations

import orjson
import pytest

from vigil import errors
from vigil.api.problems import MEDIA_TYPE, field_path, problem_for


def test_field_path_renders_indices_and_names() -> None:
    assert field_path(("body", "items", 0, "severity")) == "body.items[0].severity"
    assert field_path((3, "timestamp")) == "[3].timestamp"
    assert field_path(()) == ""


@pytest.mark.parametrize(
    ("exc", "status", "slug"),
    [
        (errors.NotFoundError("alert 7: not found"), 404, "not-found"),
        (errors.InvalidTransitionError("resolved → new"), 409, "invalid-transition"),
        (errors.ConflictError("name taken"), 409, "conflict"),
        (errors.InvalidInputError("bad", field="body.x"), 422, "invalid-input"),
        (errors.AuthenticationError("authentication required"), 401, "unauthenticated"),
        (errors.PermissionDeniedError("missing alerts:write"), 403, "forbidden"),
        (errors.QuotaExceededError("events per day", retry_after=60), 429, "quota-exceeded"),
        (errors.RateLimitedError("slow down", retry_after=3), 429, "rate-limited"),
        (errors.PayloadTooLargeError("over 10 MiB"), 413, "payload-too-large"),
        (errors.UnavailableError("database down"), 503, "unavailable"),
    ],
)
def test_domain_errors_map_to_status_and_type(exc: Exception, status: int, slug: str) -> None:
    response = problem_for(exc, "/v1/x")
    assert response.status_code == status
    assert response.media_type == MEDIA_TYPE
    body = orjson.loads(bytes(response.body))
    assert body["status"] == status
    assert body["type"].endswith("/" + slug)
    assert body["instance"] == "/v1/x"
    assert body["detail"] == str(exc)


def test_retry_after_and_field_errors_are_carried() -> None:
    limited = problem_for(errors.RateLimitedError("x", retry_after=7, headers={"RateLimit": "a"}))
    assert limited.headers["retry-after"] == "7"
    assert limited.headers["ratelimit"] == "a"
    invalid = problem_for(errors.InvalidInputError("must be a uuid", field="body.event_id"))
    body = orjson.loads(bytes(invalid.body))
    assert body["errors"] == [{"field": "body.event_id", "message": "must be a uuid"}]
    unauth = problem_for(errors.AuthenticationError("authentication required"))
    assert unauth.headers["www-authenticate"].startswith("Bearer")


def test_unexpected_errors_hide_internals() -> None:
    response = problem_for(RuntimeError("secret internals"))
    assert response.status_code == 500
    assert b"secret internals" not in bytes(response.body)
