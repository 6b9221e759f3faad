"""The error answers declared in ``/openapi.json`` (in-process app, no server).

No operation may fall back on a catch-all ``default`` response (then schemathesis'
``status_code_conformance`` could never fail), and each declares at least the problems its
dependencies imply: 401 when it authenticates, 403 when it checks a permission or wants a
signed-in user, 429/503 where the rate limiter runs, 404 when the path names an object, 422 when
there is input to validate, 400 when FastAPI parses a JSON body. Each error response is a
problem document.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from vigil.api.openapi import EXTRA_STATUSES, OWN_BODY_503
from vigil.api.problems import MEDIA_TYPE

PROBLEM_REF = "#/components/schemas/Problem"
METHODS = {"get", "post", "put", "patch", "delete"}


@dataclass(frozen=True)
class Route:
    key: str
    authenticated: bool
    checks_access: bool
    path_params: bool
    has_input: bool
    parses_body: bool


def _walk(dependant: Any, names: set[str], params: dict[str, bool]) -> None:
    call = getattr(dependant, "call", None)
    names.add(getattr(call, "__name__", ""))
    if getattr(call, "required_permission", None):
        names.add("require")
    params["path"] |= bool(dependant.path_params)
    params["body"] |= bool(dependant.body_params)
    params["input"] |= bool(
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
    )
    for sub in dependant.dependencies:
        _walk(sub, names, params)


def _routes(app: Any) -> Iterator[Route]:
    for ctx in iter_route_contexts(app.routes):
        dependant = getattr(ctx, "dependant", None)
        if dependant is None or ctx.path is None:
            continue
        names: set[str] = set()
        params = {"path": False, "input": False, "body": False}
        _walk(dependant, names, params)
        for method in sorted((ctx.methods or set()) - {"HEAD"}):
            yield Route(
                key=f"{method} {ctx.path}",
                authenticated="current_principal" in names,
                checks_access=bool(names & {"require", "signed_in_user"}),
                path_params=params["path"],
                has_input=params["input"],
                parses_body=params["body"],
            )


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[dict[str, Any], dict[str, Route]]]:
    from vigil.api.app import create_app
    from vigil.config import Settings
    from vigil.runtime import build_runtime

    runtime = build_runtime(Settings(home=Path(tempfile.mkdtemp(prefix="vigil-openapi-"))))
    try:
        app = create_app(runtime, manage_workers=False)
        r = TestClient(app).get("/openapi.json")
        assert r.status_code == 200, r.text
        yield r.json(), {route.key: route for route in _routes(app)}
    finally:
        runtime.engine.dispose()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_no_operation_has_a_default_response(built: tuple[dict[str, Any], Any]) -> None:
    spec, _ = built
    with_default = [key for key, op in _operations(spec) if "default" in op["responses"]]
    assert not with_default, f"catch-all `default` responses: {with_default}"


def test_every_operation_declares_what_its_dependencies_imply(
    built: tuple[dict[str, Any], dict[str, Route]],
) -> None:
    spec, routes = built
    missing: list[str] = []
    operations = dict(_operations(spec))
    assert len(operations) > 70  # the whole API, not an empty schema
    for key, operation in operations.items():
        route = routes[key]
        declared = {int(s) for s in operation["responses"]}
        body = "requestBody" in operation
        implied = {
            400: route.parses_body,
            401: route.authenticated,
            403: route.checks_access,
            404: route.path_params,
            422: route.has_input or body,
            429: not key.startswith("GET /health/"),
            503: not key.startswith("GET /health/live"),
        }
        needed = {status for status, yes in implied.items() if yes}
        needed |= set(EXTRA_STATUSES.get(key, ()))
        if needed - declared:
            missing.append(f"{key}: {sorted(needed - declared)}")
    assert not missing, "operations missing error responses:\n" + "\n".join(missing)


def test_authenticated_routes_declare_401_and_403(
    built: tuple[dict[str, Any], dict[str, Route]],
) -> None:
    """The rule the issue names, spelled out on its own: every route that requires a
    permission declares both 401 and 403."""
    spec, routes = built
    protected = [key for key, route in routes.items() if route.checks_access]
    assert len(protected) > 60
    for key in protected:
        method, path = key.split(" ", 1)
        responses = spec["paths"][path][method.lower()]["responses"]
        assert {"401", "403"} <= set(responses), key


def test_every_error_response_is_a_problem_document(built: tuple[dict[str, Any], Any]) -> None:
    spec, _ = built
    assert spec["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    for key, operation in _operations(spec):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            content = response["content"]
            if key in OWN_BODY_503 and status == "503":
                assert "application/json" in content, key  # the probe's own document
                if key == "GET /health/ready":
                    continue
            assert content[MEDIA_TYPE]["schema"] == {"$ref": PROBLEM_REF}, (key, status)
        if "401" in operation["responses"]:
            assert "WWW-Authenticate" in operation["responses"]["401"]["headers"], key


def test_extra_statuses_name_real_operations(built: tuple[dict[str, Any], Any]) -> None:
    spec, _ = built
    stale = sorted((set(EXTRA_STATUSES) | OWN_BODY_503) - set(dict(_operations(spec))))
    assert not stale, f"no such operations: {stale}"
