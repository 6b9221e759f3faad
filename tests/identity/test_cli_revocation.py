"""Revocations made with the CLI reach a running server at once: `vigil keys revoke`,
`vigil users set-roles` and `vigil users disable` on the embedded default (the revocation epoch
the server reads once a second), and over Redis pub/sub when the deployment has Redis.

The servers cache verified keys for an hour here, so only the mechanism under test can end a
cached key before the (generous) polling deadline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.support.identity import DEFAULT_PASSWORD, Credentials, bootstrap
from tests.support.server import VigilServer, run_vigil

CACHED_FOR_AN_HOUR = {"VIGIL_IDENTITY__KEY_CACHE_TTL_S": "3600"}
DEADLINE_S = 20.0


def _until(http: httpx.Client, path: str, status: int) -> int:
    """Poll ``path`` until it answers ``status`` or the deadline passes; the last status."""
    deadline = time.monotonic() + DEADLINE_S
    got = http.get(path).status_code
    while got != status and time.monotonic() < deadline:
        time.sleep(0.1)
        got = http.get(path).status_code
    return got


def _cli_key(home: Path, tenant: str, role: str, env: dict[str, str] | None = None) -> dict:
    args = ["keys", "create", "--tenant", tenant, "--role", role, "--name", f"cli {role}"]
    data: dict = json.loads(run_vigil([*args, "--json"], home=home, env=env).stdout)
    return data


def _user_key(server: VigilServer, creds: Credentials, email: str, role: str) -> str:
    """A key acting as ``role``, owned by a new admin (made with the CLI) who creates it
    through the API."""
    args = ["users", "create", "--tenant", creds.tenant_name, "--email", email, "--role", "admin"]
    run_vigil([*args, "--password-stdin"], home=server.home, input=DEFAULT_PASSWORD + "\n")
    login = {"tenant": creds.tenant_name, "email": email, "password": DEFAULT_PASSWORD}
    with server.client() as http:
        token = http.post("/v1/auth/login", json=login).json()["access_token"]
    with server.client(token) as http:
        r = http.post("/v1/keys", json={"name": f"{email}'s", "roles": [role]})
    assert r.status_code == 201, r.text
    key: str = r.json()["key"]
    return key


def test_cli_revocations_reach_the_running_server(tmp_path: Path) -> None:
    creds = bootstrap(tmp_path)
    server = VigilServer(tmp_path, env=CACHED_FOR_AN_HOUR).start()
    tenant = creds.tenant_name
    try:
        made = _cli_key(tmp_path, tenant, "auditor")
        owned = _user_key(server, creds, "ana@acme.test", "security")
        with server.client(made["api_key"]) as key, server.client(owned) as ana:
            assert key.get("/v1/audit/entries").status_code == 200  # now cached
            assert ana.get("/v1/notifications/channels").status_code == 200

            run_vigil(["keys", "revoke", "--tenant", tenant, made["id"]], home=tmp_path)
            assert _until(key, "/v1/audit/entries", 401) == 401

            # The owner's roles bound her key (viewers may not read notification channels).
            args = ["users", "set-roles", "--tenant", tenant, "--email", "ana@acme.test"]
            run_vigil([*args, "--role", "viewer"], home=tmp_path)
            assert _until(ana, "/v1/notifications/channels", 403) == 403
            assert ana.get("/v1/alerts").status_code == 200

            args = ["users", "disable", "--tenant", tenant, "--email", "ana@acme.test"]
            run_vigil(args, home=tmp_path)
            assert _until(ana, "/v1/alerts", 401) == 401
    finally:
        server.stop()


def test_cli_revocation_is_broadcast_over_redis(tmp_path: Path, redis_url: str) -> None:
    # The server reads the epoch once an hour here: only the CLI's broadcast can reach it.
    env = {
        **CACHED_FOR_AN_HOUR,
        "VIGIL_QUEUE_URL": redis_url,
        "VIGIL_IDENTITY__REVOCATION_CHECK_INTERVAL_S": "3600",
    }
    creds = bootstrap(tmp_path, env=env)
    server = VigilServer(tmp_path, env=env).start()
    try:
        made = _cli_key(tmp_path, creds.tenant_name, "auditor", env=env)
        with server.client(made["api_key"]) as key:
            assert key.get("/v1/audit/entries").status_code == 200
            args = ["keys", "revoke", "--tenant", creds.tenant_name, made["id"]]
            run_vigil(args, home=tmp_path, env=env)
            assert _until(key, "/v1/audit/entries", 401) == 401
    finally:
        server.stop()
