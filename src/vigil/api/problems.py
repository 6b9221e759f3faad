"""RFC 9457 problem+json: the one place where errors become HTTP answers.

Every problem carries ``type``, ``title``, ``status``, ``detail``, ``instance`` (the path) and the
``request_id``; validation problems add ``errors: [{"field": "body.items[0].severity",
"message": ...}]`` so a client knows exactly what to fix. Unexpected exceptions become a 500
problem without internals (and are logged with the request id).

A dependency that went away is not a bug: driver errors meaning "the database (or Redis) cannot
be reached right now" (:func:`unavailable_from`) become :class:`vigil.errors.UnavailableError`,
a 503 with ``Retry-After``, wherever they surface: in a route, in a dependency, or in domain
middleware that runs before routing (:class:`UnavailableMiddleware`).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vigil import errors as e
from vigil.obs.logging import REQUEST_ID

log = logging.getLogger("vigil.api")

PROBLEM_TYPE_BASE = "https://vigil.dev/problems/"
MEDIA_TYPE = "application/problem+json"

# (exception class, status, type slug, title) — checked in order, most specific first.
_MAPPING: list[tuple[type[Exception], int, str, str]] = [
    (e.InvalidTransitionError, 409, "invalid-transition", "Transition not allowed"),
    (e.ConflictError, 409, "conflict", "Conflict"),
    (e.NotFoundError, 404, "not-found", "Not found"),
    (e.InvalidInputError, 422, "invalid-input", "Invalid input"),
    (e.AuthenticationError, 401, "unauthenticated", "Authentication required"),
    (e.PermissionDeniedError, 403, "forbidden", "Forbidden"),
    (e.QuotaExceededError, 429, "quota-exceeded", "Quota exceeded"),
    (e.RateLimitedError, 429, "rate-limited", "Too many requests"),
    (e.PayloadTooLargeError, 413, "payload-too-large", "Payload too large"),
    (e.UnavailableError, 503, "unavailable", "Service unavailable"),
    (e.ConfigurationError, 500, "configuration", "Server misconfigured"),
]


#: Retry-After of a 503 caused by a database or Redis outage.
OUTAGE_RETRY_AFTER_S = 5
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# SQLite reports contention and broken schemas with the same class; only the first is transient.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "busy")


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError):
        return True  # a pool that cannot hand out a connection in time
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig or exc
    if isinstance(exc, sqlite3.OperationalError):
        return any(marker in str(exc).lower() for marker in _SQLITE_TRANSIENT)
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the driver ships with the package
        return False
    # psycopg's OperationalError covers refused and broken connections, server shutdown,
    # cancellation and too many connections: all "retry later", none a bug of the request.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def unavailable_from(exc: BaseException) -> e.UnavailableError | None:
    """The 503 a dependency outage deserves, or None when ``exc`` is something else."""
    if isinstance(exc, e.UnavailableError):
        return exc
    if isinstance(exc, _REDIS_DOWN):
        dependency = "queue"
    elif _database_down(exc):
        dependency = "database"
    else:
        return None
    log.warning(
        "dependency unavailable",
        extra={"dependency": dependency, "error": f"{type(exc).__name__}: {exc}"[:500]},
    )
    # The driver's message names hosts and ports: it goes to the log, not to the client.
    return e.UnavailableError(
        f"the {dependency} is unavailable ({type(exc).__name__}); retry later",
        retry_after=OUTAGE_RETRY_AFTER_S,
    )


def problem(
    *,
    status: int,
    title: str,
    detail: str | None = None,
    slug: str | None = None,
    instance: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + slug if slug else "about:blank",
        "title": title,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    request_id = REQUEST_ID.get()
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers or {}
    )


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "items", 0, "severity")`` → ``body.items[0].severity``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    items = []
    for err in exc.errors():
        items.append({"field": field_path(err.get("loc", ())), "message": err.get("msg", "")})
    return items


def problem_for(exc: Exception, instance: str | None = None) -> Response:
    exc = unavailable_from(exc) or exc
    for cls, status, slug, title in _MAPPING:
        if isinstance(exc, cls):
            headers: dict[str, str] = {}
            errors = None
            if isinstance(exc, e.RateLimitedError):
                headers = {"Retry-After": str(exc.retry_after), **exc.headers}
            elif isinstance(exc, e.QuotaExceededError | e.UnavailableError):
                if exc.retry_after is not None:
                    headers = {"Retry-After": str(exc.retry_after)}
            elif isinstance(exc, e.AuthenticationError):
                headers = {"WWW-Authenticate": 'Bearer realm="vigil"'}
            if isinstance(exc, e.InvalidInputError) and exc.field:
                errors = [{"field": exc.field, "message": str(exc)}]
            detail = str(exc) if status != 500 else "the server configuration is invalid"
            return problem(
                status=status,
                title=title,
                detail=detail,
                slug=slug,
                instance=instance,
                errors=errors,
                headers=headers,
            )
    log.exception("unhandled error", exc_info=exc)
    return problem(status=500, title="Internal server error", slug="internal", instance=instance)


class UnavailableMiddleware:
    """Answers 503 for outages raised *outside* routing (domain middleware that authenticates
    or meters before the route runs), where the app's exception handlers never see them.
    Anything else passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            outage = unavailable_from(exc)
            if outage is None or started:
                raise
            response = problem_for(outage, scope.get("path"))
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem(
            status=422,
            title="Invalid request",
            detail="the request does not match the schema",
            slug="validation",
            instance=request.url.path,
            errors=_validation_errors(exc),
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem(
            status=exc.status_code,
            title=str(exc.detail) if exc.detail else "Error",
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def on_vigil(request: Request, exc: Exception) -> Response:
        return problem_for(exc, request.url.path)

    async def on_any(request: Request, exc: Exception) -> Response:
        return problem_for(exc, request.url.path)

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(e.VigilError, on_vigil)
    app.add_exception_handler(Exception, on_any)
