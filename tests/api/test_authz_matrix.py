"""The authorisation matrix: every route × every built-in role, against ONE declared table.

* ``test_every_route_is_declared``: each route of the app (in-process introspection, no server)
  has an entry in ``vigil.identity.policy.ROUTE_POLICY`` that matches its ``require(...)``
  dependency; the failure message lists the exact lines to add.
* ``test_matrix_on_the_running_server``: walks ``/openapi.json`` of the real server and calls
  each operation without credentials, with an API key of every built-in role and with a signed-in
  user of every built-in role; the answer must be 401 / 403 / anything-else exactly as the table
  says, and never a 500.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.identity import DEFAULT_PASSWORD, Credentials, bootstrap
from tests.support.server import VigilServer
from vigil.identity.policy import (
    AUTHENTICATED,
    PUBLIC,
    ROUTE_POLICY,
    USER_SESSION,
    declared_routes,
)
from vigil.identity.principal import BUILTIN_ROLES, Permission

ROLES = sorted(BUILTIN_ROLES)
# Run last: it ends the caller's session.
LAST = {"POST /v1/auth/logout"}


def _app_routes() -> list[Any]:
    from vigil.api.app import create_app
    from vigil.config import Settings
    from vigil.runtime import build_runtime

    runtime = build_runtime(Settings(home=Path(tempfile.mkdtemp(prefix="vigil-matrix-"))))
    try:
        return list(declared_routes(create_app(runtime, manage_workers=False)))
    finally:
        runtime.engine.dispose()


def test_every_route_is_declared() -> None:
    routes = _app_routes()
    missing, wrong = [], []
    for route in routes:
        declared = ROUTE_POLICY.get(route.key)
        if declared is None:
            suggestion = (
                f"P.{Permission(route.permissions[0]).name}"
                if route.permissions
                else "PUBLIC / AUTHENTICATED / USER_SESSION"
            )
            missing.append(f'    "{route.key}": {suggestion},')
            continue
        if declared == PUBLIC:
            ok = not route.authenticated and not route.permissions
        elif declared == AUTHENTICATED:
            ok = route.authenticated and not route.permissions and not route.user_session
        elif declared == USER_SESSION:
            ok = route.user_session and not route.permissions
        else:
            ok = set(route.permissions) == {declared}
        if not ok:
            needs = list(route.permissions) or (
                "a signed-in user"
                if route.user_session
                else "authentication"
                if route.authenticated
                else "nothing"
            )
            wrong.append(f"  {route.key}: table says {declared!r}, the route requires {needs}")
    stale = sorted(set(ROUTE_POLICY) - {r.key for r in routes})
    message = []
    if missing:
        message.append(
            "routes missing from ROUTE_POLICY in src/vigil/identity/policy.py; add:\n"
            + "\n".join(missing)
        )
    if wrong:
        message.append("routes whose dependency disagrees with the table:\n" + "\n".join(wrong))
    if stale:
        message.append("table entries with no such route (remove them):\n  " + "\n  ".join(stale))
    assert not message, "\n\n".join(message)


# --- the live matrix ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    label: str
    role: str | None
    token: str | None
    is_user: bool


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VigilServer, list[Caller]]]:
    home = tmp_path_factory.mktemp("matrix")
    creds: Credentials = bootstrap(home)
    callers = [Caller("anonymous", None, None, False)]
    server = VigilServer(home).start()
    try:
        with server.client(creds.admin_key) as admin:
            for role in ROLES:
                r = admin.post("/v1/keys", json={"name": f"matrix {role}", "roles": [role]})
                assert r.status_code == 201, r.text
                callers.append(Caller(f"key:{role}", role, r.json()["key"], False))
            for role in ROLES:
                email = f"{role}@matrix.test"
                user = {"email": email, "password": DEFAULT_PASSWORD, "roles": [role]}
                r = admin.post("/v1/users", json=user)
                assert r.status_code == 201, r.text
                login = {"tenant": creds.tenant_name, "email": email, "password": DEFAULT_PASSWORD}
                r = admin.post("/v1/auth/login", json=login)
                assert r.status_code == 200, r.text
                callers.append(Caller(f"user:{role}", role, r.json()["access_token"], True))
        yield server, callers
    finally:
        server.stop()


def _url(path: str, operation: dict[str, Any]) -> str:
    for param in operation.get("parameters", []):
        if param.get("in") != "path":
            continue
        kind = param.get("schema", {}).get("type")
        value = "1" if kind == "integer" else str(uuid.uuid4())
        path = path.replace("{" + param["name"] + "}", value)
    return path


def _expected(access: str, caller: Caller) -> str:
    """'401', '403' or 'ok' (anything but 401/403/5xx)."""
    if access == PUBLIC:
        return "ok"
    if caller.token is None:
        return "401"
    if access == AUTHENTICATED:
        return "ok"
    if access == USER_SESSION:
        return "ok" if caller.is_user else "403"
    assert caller.role is not None
    return "ok" if access in BUILTIN_ROLES[caller.role] else "403"


def _verdict(status: int) -> str:
    if status in (401, 403):
        return str(status)
    return "5xx" if status >= 500 else "ok"


def test_matrix_on_the_running_server(live: tuple[VigilServer, list[Caller]]) -> None:
    server, callers = live
    spec = httpx.get(server.url + "/openapi.json").json()
    operations = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                operations.append((f"{method.upper()} {path}", method.upper(), path, operation))
    operations.sort(key=lambda op: (op[0] in LAST, op[0]))
    undeclared = [key for key, *_ in operations if key not in ROUTE_POLICY]
    assert not undeclared, "undeclared routes in /openapi.json: " + ", ".join(undeclared)
    mismatches = []
    for caller in callers:
        headers = {"Authorization": f"Bearer {caller.token}"} if caller.token else {}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for key, method, path, operation in operations:
                url = _url(path, operation)
                body = {} if method in {"POST", "PUT", "PATCH"} else None
                r = http.request(method, url, json=body)
                want = _expected(ROUTE_POLICY[key], caller)
                got = _verdict(r.status_code)
                if got != want:
                    mismatches.append(
                        f"{caller.label:14} {key}: expected {want}, got {r.status_code} "
                        f"{r.text[:160]}"
                    )
    assert not mismatches, "\n".join(mismatches)
