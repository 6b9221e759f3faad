"""API-key authentication on the real server, with credentials made by the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.identity import Credentials, bootstrap, create_key
from tests.support.server import VigilServer, run_vigil
from vigil.identity.credentials import new_api_key


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keys-home")


@pytest.fixture(scope="module")
def creds(home: Path) -> Credentials:
    return bootstrap(home)


@pytest.fixture(scope="module")
def server(home: Path, creds: Credentials) -> Iterator[VigilServer]:
    srv = VigilServer(home).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_admin_key_from_bootstrap_is_accepted(server: VigilServer, creds: Credentials) -> None:
    with server.client(creds.admin_key) as http:
        r = http.get("/v1/audit/entries")
    assert r.status_code == 200, r.text
    actions = {e["action"] for e in r.json()["items"]}
    assert {"identity.tenant_created", "identity.user_created", "identity.key_created"} <= actions


@pytest.mark.parametrize(
    "token",
    [None, "vgl_garbage", "not-a-key", "placeholder-unknown-key"],
)
def test_missing_or_bad_credentials_get_a_generic_401(
    server: VigilServer, token: str | None
) -> None:
    if token == "placeholder-unknown-key":
        token = new_api_key()  # well formed, checksum right, never issued
    with server.client(token) as http:
        r = http.get("/v1/audit/entries")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["detail"] == "invalid or missing credentials"


def test_role_without_the_permission_gets_403(
    server: VigilServer, home: Path, creds: Credentials
) -> None:
    viewer = create_key(home, creds.tenant_name, "viewer")
    auditor = create_key(home, creds.tenant_name, "auditor")
    with server.client(viewer) as http:
        assert http.get("/v1/audit/entries").status_code == 403
    with server.client(auditor) as http:
        assert http.get("/v1/audit/entries").status_code == 200


def test_expiring_key_from_cli_works(server: VigilServer, home: Path, creds: Credentials) -> None:
    key = create_key(home, creds.tenant_name, "auditor", expires_in="1h")
    with server.client(key) as http:
        assert http.get("/v1/audit/entries").status_code == 200


def test_tenant_isolation_of_keys(server: VigilServer, home: Path, creds: Credentials) -> None:
    other = bootstrap(home, tenant="globex")
    with server.client(other.admin_key) as http:
        entries = http.get("/v1/audit/entries").json()["items"]
    assert entries and {e["tenant"] for e in entries} == {other.tenant_id}


def test_cli_rejects_unknown_tenant_and_role(home: Path, creds: Credentials) -> None:
    proc = run_vigil(
        ["keys", "create", "--tenant", "nope", "--role", "viewer", "--name", "x"],
        home=home,
        check=False,
    )
    assert proc.returncode == 1 and "no tenant named" in proc.stderr
    proc = run_vigil(
        ["keys", "create", "--tenant", creds.tenant_name, "--role", "wizard", "--name", "x"],
        home=home,
        check=False,
    )
    assert proc.returncode == 1 and "unknown role" in proc.stderr
    assert "vgl_" not in proc.stdout


def test_admin_init_twice_fails_and_generated_password_is_printed_once(home: Path) -> None:
    proc = run_vigil(
        ["admin", "init", "--tenant", "initech", "--email", "a@initech.test"], home=home
    )
    assert "password: " in proc.stdout and "api key:  vgl_" in proc.stdout
    again = run_vigil(
        ["admin", "init", "--tenant", "initech", "--email", "a@initech.test"],
        home=home,
        check=False,
    )
    assert again.returncode == 1 and "exists" in again.stderr
