"""The error answers each operation declares in ``/openapi.json``, derived in one place.

No catch-all ``default`` response: a client (and schemathesis' ``status_code_conformance``)
must be able to tell from the schema which problems an operation can answer. Most follow from
what the route depends on, so they are derived from the built app rather than written into
every decorator:

* 401 where the route authenticates the caller (``current_principal``), 403 where it checks a
  permission (``require(...)``) or wants a signed-in user (``signed_in_user``);
* 429 and 503 wherever the rate-limit middleware runs (every route but the health probes): it
  counts in the limiter's store before routing, and a storage or queue outage is a 503
  (:mod:`vigil.api.problems`); 503 too where a credential is looked up;
* 404 where the path names an object, 422 where there is a path, query, header or body to
  validate, 400 where FastAPI parses a JSON body (its answer to bytes that are not UTF-8).

What only the service behind a route knows (409 conflicts, 413/415 of ingest, a login's 401) is
listed in :data:`EXTRA_STATUSES`; ``tests/api/test_openapi_errors.py`` checks both against the
routes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI

from vigil.api.problems import MEDIA_TYPE
from vigil.identity.middleware import UNLIMITED_PREFIXES
from vigil.identity.policy import RouteInfo, declared_routes

PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": PROBLEM_SCHEMA_NAME,
    "description": "An RFC 9457 problem document.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status"],
}

DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be read (not UTF-8 text)",
    401: "No valid credential (problem+json, with `WWW-Authenticate`)",
    403: "The caller may not do this",
    404: "No such object in the caller's tenant",
    409: "Conflicts with the current state (a name in use, a transition not allowed)",
    413: "The request body is larger than the limit",
    415: "Unsupported content type or content encoding",
    422: "The request does not match the schema, or a value is invalid",
    429: "Rate limit or quota exceeded (`Retry-After` says when to retry)",
    503: "Storage or queue unavailable right now (`Retry-After` says when to retry)",
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The auth scheme", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}

CONFLICT = (409,)
#: Statuses an operation answers that its dependencies and parameters do not reveal.
EXTRA_STATUSES: dict[str, tuple[int, ...]] = {
    # A wrong password or refresh token is a 401 of a public route; repeated failures a 429.
    "POST /v1/auth/login": (401, 429),
    "POST /v1/auth/refresh": (401, 429),
    "POST /v1/auth/mfa/totp": CONFLICT,
    "POST /v1/auth/mfa/totp/confirm": CONFLICT,
    "POST /v1/users": CONFLICT,
    "PATCH /v1/users/{user_id}": CONFLICT,
    "POST /v1/roles": CONFLICT,
    "DELETE /v1/roles/{role_id}": CONFLICT,
    "POST /v1/keys/{key_id}/rotate": CONFLICT,
    "POST /v1/access-rules": CONFLICT,
    # No checkpoint signed (yet) at the size asked for.
    "GET /v1/audit/checkpoint": (404,),
    # Size and media type are checked on the raw body; a tenant's ingest quota is a 429 anyway.
    "POST /v1/events": (413, 415),
    "PATCH /v1/alerts/{alert_id}": CONFLICT,
    "POST /v1/incidents": CONFLICT,
    "PATCH /v1/incidents/{incident_id}": CONFLICT,
    "POST /v1/incidents/{incident_id}/alerts": CONFLICT,
    "DELETE /v1/incidents/{incident_id}/alerts/{alert_id}": CONFLICT,
    "POST /v1/escalation-policies": CONFLICT,
    "PATCH /v1/escalation-policies/{policy_id}": CONFLICT,
    "POST /v1/notifications/channels": CONFLICT,
    "PATCH /v1/notifications/channels/{channel_id}": CONFLICT,
    "POST /v1/notifications/routes": CONFLICT,
    "PATCH /v1/notifications/routes/{route_id}": CONFLICT,
}

#: Health probes answer their own JSON document (not a problem) when a dependency is down.
HEALTH_DOWN: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "checks": {"type": "object"},
        "down": {"type": "object"},
    },
    "required": ["status", "checks"],
}
OWN_BODY_503 = frozenset({"GET /health/ready", "GET /health/deep"})


def rate_limited(path: str) -> bool:
    return not path.startswith(UNLIMITED_PREFIXES)


def error_statuses(route: RouteInfo, operation: dict[str, Any]) -> set[int]:
    """The problem statuses ``operation`` (the generated OpenAPI operation of ``route``) can
    answer."""
    statuses: set[int] = set(EXTRA_STATUSES.get(route.key, ()))
    if rate_limited(route.path):
        statuses |= {429, 503}
    if route.authenticated:
        statuses |= {401, 503}  # the credential is looked up in storage
    if route.permissions or route.user_session:
        statuses.add(403)
    places = {p.get("in") for p in operation.get("parameters", [])}
    if "path" in places:
        statuses.add(404)
    if places or "requestBody" in operation:
        statuses.add(422)
    if route.parses_body:
        statuses.add(400)  # FastAPI's answer to a body that is not UTF-8
    return statuses


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": DESCRIPTIONS[status],
        "content": {
            MEDIA_TYPE: {"schema": {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"}}
        },
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def _fastapi_validation_error(response: dict[str, Any] | None) -> bool:
    schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def declare_errors(spec: dict[str, Any], routes: Iterable[RouteInfo]) -> None:
    """Add the problem responses of every operation of ``spec`` (in place); drop ``default``."""
    spec.setdefault("components", {}).setdefault("schemas", {})[PROBLEM_SCHEMA_NAME] = (
        PROBLEM_SCHEMA
    )
    by_key = {route.key: route for route in routes}
    for path, item in spec.get("paths", {}).items():
        for method, operation in item.items():
            route = by_key.get(f"{method.upper()} {path}")
            if route is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("default", None)
            for status in sorted(error_statuses(route, operation)):
                if _fastapi_validation_error(responses.get(str(status))):
                    del responses[str(status)]  # we answer a problem, not FastAPI's document
                responses.setdefault(str(status), _problem_response(status))
            if route.key in OWN_BODY_503:
                down = responses.setdefault("503", {"description": DESCRIPTIONS[503]})
                down.setdefault("content", {})["application/json"] = {"schema": HEALTH_DOWN}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and so ``/openapi.json``) declare the problem responses."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_errors(generate(), declared_routes(app))
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
