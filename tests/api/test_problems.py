"""Errors become RFC 9457 problem documents in one place."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from sqlalchemy import text

from vigil import errors
from vigil.api.problems import (
    MEDIA_TYPE,
    OUTAGE_RETRY_AFTER_S,
    UnavailableMiddleware,
    field_path,
    problem_for,
)
from vigil.store import create_engine_for


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


# --- outages: driver errors become 503 with Retry-After ------------------------------------------


def _real_error(action: Callable[[], object]) -> Exception:
    try:
        action()
    except Exception as exc:
        return exc
    raise AssertionError("expected the driver to fail")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


def _pg_connect() -> None:
    engine = create_engine_for(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/x")
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def _redis_ping() -> None:
    client = redis.Redis(port=_closed_port(), socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def _problem(exc: Exception) -> tuple[int, dict[str, Any], Any]:
    response = problem_for(exc, "/v1/alerts")
    return response.status_code, orjson.loads(bytes(response.body)), response.headers


@pytest.mark.parametrize(
    ("action", "dependency"),
    [(_pg_connect, "database"), (_redis_ping, "queue")],
    ids=["postgresql-refused", "redis-refused"],
)
def test_unreachable_dependencies_are_503_with_retry_after(
    action: Callable[[], object], dependency: str
) -> None:
    status, body, headers = _problem(_real_error(action))
    assert status == 503
    assert body["type"].endswith("/unavailable")
    assert body["detail"].startswith(f"the {dependency} is unavailable")
    assert int(headers["retry-after"]) == OUTAGE_RETRY_AFTER_S
    assert "127.0.0.1" not in body["detail"]  # the driver's message stays in the log


def test_sqlite_contention_is_503_but_a_broken_schema_is_a_bug(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    holder = create_engine_for(url)
    waiter = create_engine_for(url, connect_args={"timeout": 0})
    try:
        with holder.connect() as held:
            held.execute(text("CREATE TABLE t (x INTEGER)"))
            held.commit()
            held.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock

            def write() -> None:
                with waiter.connect() as conn:
                    conn.execute(text("PRAGMA busy_timeout=0"))
                    conn.execute(text("INSERT INTO t VALUES (2)"))

            locked = _real_error(write)
            held.rollback()

        def missing_table() -> None:
            with waiter.connect() as conn:
                conn.execute(text("SELECT * FROM no_such_table"))

        broken = _real_error(missing_table)
    finally:
        holder.dispose()
        waiter.dispose()
    assert "locked" in str(locked)
    assert _problem(locked)[0] == 503
    assert _problem(broken)[0] == 500


def test_outages_raised_before_routing_are_answered_503() -> None:
    """Domain middleware (authentication, rate limits) runs outside the exception handlers."""
    outage = _real_error(_pg_connect)

    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        raise outage

    async def other_bug(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "GET", "path": "/v1/alerts", "headers": []}
    asyncio.run(UnavailableMiddleware(failing_app)(scope, receive, send))
    start = sent[0]
    assert start["status"] == 503
    assert (b"retry-after", str(OUTAGE_RETRY_AFTER_S).encode()) in start["headers"]
    assert orjson.loads(sent[1]["body"])["type"].endswith("/unavailable")
    with pytest.raises(RuntimeError):
        asyncio.run(UnavailableMiddleware(other_bug)(scope, receive, send))
